from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="ToolResult")


@_attrs_define
class ToolResult:
    """
    Attributes:
        tool_call_id (str | Unset):
        status (int | Unset): The upstream's HTTP status
        content_type (None | str | Unset):
        body (Any | Unset): The upstream's body: JSON when it sent JSON, else text
        latency_ms (int | Unset):
    """

    tool_call_id: str | Unset = UNSET
    status: int | Unset = UNSET
    content_type: None | str | Unset = UNSET
    body: Any | Unset = UNSET
    latency_ms: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        tool_call_id = self.tool_call_id

        status = self.status

        content_type: None | str | Unset
        if isinstance(self.content_type, Unset):
            content_type = UNSET
        else:
            content_type = self.content_type

        body = self.body

        latency_ms = self.latency_ms

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if tool_call_id is not UNSET:
            field_dict["tool_call_id"] = tool_call_id
        if status is not UNSET:
            field_dict["status"] = status
        if content_type is not UNSET:
            field_dict["content_type"] = content_type
        if body is not UNSET:
            field_dict["body"] = body
        if latency_ms is not UNSET:
            field_dict["latency_ms"] = latency_ms

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        tool_call_id = d.pop("tool_call_id", UNSET)

        status = d.pop("status", UNSET)

        def _parse_content_type(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        content_type = _parse_content_type(d.pop("content_type", UNSET))

        body = d.pop("body", UNSET)

        latency_ms = d.pop("latency_ms", UNSET)

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
