from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="ToolResponseStorage")


@_attrs_define
class ToolResponseStorage:
    """
    Attributes:
        store_tool_responses (bool):
    """

    store_tool_responses: bool

    def to_dict(self) -> dict[str, Any]:
        store_tool_responses = self.store_tool_responses

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "store_tool_responses": store_tool_responses,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        store_tool_responses = d.pop("store_tool_responses")

        tool_response_storage = cls(
            store_tool_responses=store_tool_responses,
        )

        return tool_response_storage
