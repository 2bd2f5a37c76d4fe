from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="WebhookReplay")


@_attrs_define
class WebhookReplay:
    """
    Example:
        {'from_position': 1200}

    Attributes:
        from_position (int): The first log position sent again
    """

    from_position: int

    def to_dict(self) -> dict[str, Any]:
        from_position = self.from_position

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "from_position": from_position,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        from_position = d.pop("from_position")

        webhook_replay = cls(
            from_position=from_position,
        )

        return webhook_replay
