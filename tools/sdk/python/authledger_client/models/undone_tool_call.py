from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="UndoneToolCall")


@_attrs_define
class UndoneToolCall:
    """
    Attributes:
        tool_call_id (str):
        tool (str):
        undone (Literal[True]):
        status (int | None): The upstream's status for the compensating request
    """

    tool_call_id: str
    tool: str
    undone: Literal[True]
    status: int | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        tool_call_id = self.tool_call_id

        tool = self.tool

        undone = self.undone

        status: int | None
        status = self.status

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "tool_call_id": tool_call_id,
                "tool": tool,
                "undone": undone,
                "status": status,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        tool_call_id = d.pop("tool_call_id")

        tool = d.pop("tool")

        undone = cast(Literal[True], d.pop("undone"))
        if undone != True:
            raise ValueError(f"undone must match const True, got '{undone}'")

        def _parse_status(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        status = _parse_status(d.pop("status"))

        undone_tool_call = cls(
            tool_call_id=tool_call_id,
            tool=tool,
            undone=undone,
            status=status,
        )

        undone_tool_call.additional_properties = d
        return undone_tool_call

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
