from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="AgentConnectFlows")


@_attrs_define
class AgentConnectFlows:
    """
    Attributes:
        any_user (bool): Whether agent keys may start connect flows for any user of the workspace.
    """

    any_user: bool

    def to_dict(self) -> dict[str, Any]:
        any_user = self.any_user

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "any_user": any_user,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        any_user = d.pop("any_user")

        agent_connect_flows = cls(
            any_user=any_user,
        )

        return agent_connect_flows
