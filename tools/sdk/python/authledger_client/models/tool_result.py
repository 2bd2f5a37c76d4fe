from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ToolResult")


@_attrs_define
class ToolResult:
    """
    Attributes:
        tool_call_id (str):
        status (int): The upstream's HTTP status
        content_type (None | str):
        body (Any): The upstream's body: JSON when it sent JSON, else text
        latency_ms (int):
    """

    tool_call_id: str
    status: int
    content_type: None | str
    body: Any
    latency_ms: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        tool_call_id = self.tool_call_id

        status = self.status

        content_type: None | str
        content_type = self.content_type

        body = self.body

        latency_ms = self.latency_ms

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "tool_call_id": tool_call_id,
                "status": status,
                "content_type": content_type,
                "body": body,
                "latency_ms": latency_ms,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        tool_call_id = d.pop("tool_call_id")

        status = d.pop("status")

        def _parse_content_type(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        content_type = _parse_content_type(d.pop("content_type"))

        body = d.pop("body")

        latency_ms = d.pop("latency_ms")

        tool_result = cls(
            tool_call_id=tool_call_id,
            status=status,
            content_type=content_type,
            body=body,
            latency_ms=latency_ms,
        )

        tool_result.additional_properties = d
        return tool_result

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
