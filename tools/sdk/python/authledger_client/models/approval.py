from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.approval_status import ApprovalStatus
from ..types import UNSET, Unset

T = TypeVar("T", bound="Approval")


@_attrs_define
class Approval:
    """
    Attributes:
        id (str | Unset):
        status (ApprovalStatus | Unset):
        tool (str | Unset):
        connection_id (str | Unset):
        user_id (str | Unset):
        argument_fingerprint (str | Unset):
        expires_at (datetime.datetime | Unset):
        tool_call_id (None | str | Unset):
    """

    id: str | Unset = UNSET
    status: ApprovalStatus | Unset = UNSET
    tool: str | Unset = UNSET
    connection_id: str | Unset = UNSET
    user_id: str | Unset = UNSET
    argument_fingerprint: str | Unset = UNSET
    expires_at: datetime.datetime | Unset = UNSET
    tool_call_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        status: str | Unset = UNSET
        if not isinstance(self.status, Unset):
            status = self.status.value

        tool = self.tool

        connection_id = self.connection_id

        user_id = self.user_id

        argument_fingerprint = self.argument_fingerprint

        expires_at: str | Unset = UNSET
        if not isinstance(self.expires_at, Unset):
            expires_at = self.expires_at.isoformat()

        tool_call_id: None | str | Unset
        if isinstance(self.tool_call_id, Unset):
            tool_call_id = UNSET
        else:
            tool_call_id = self.tool_call_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if status is not UNSET:
            field_dict["status"] = status
        if tool is not UNSET:
            field_dict["tool"] = tool
        if connection_id is not UNSET:
            field_dict["connection_id"] = connection_id
        if user_id is not UNSET:
            field_dict["user_id"] = user_id
        if argument_fingerprint is not UNSET:
            field_dict["argument_fingerprint"] = argument_fingerprint
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if tool_call_id is not UNSET:
            field_dict["tool_call_id"] = tool_call_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id", UNSET)

        _status = d.pop("status", UNSET)
        status: ApprovalStatus | Unset
        if isinstance(_status, Unset):
            status = UNSET
        else:
            status = ApprovalStatus(_status)

        tool = d.pop("tool", UNSET)

        connection_id = d.pop("connection_id", UNSET)

        user_id = d.pop("user_id", UNSET)

        argument_fingerprint = d.pop("argument_fingerprint", UNSET)

        _expires_at = d.pop("expires_at", UNSET)
        expires_at: datetime.datetime | Unset
        if isinstance(_expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = datetime.datetime.fromisoformat(_expires_at)

        def _parse_tool_call_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tool_call_id = _parse_tool_call_id(d.pop("tool_call_id", UNSET))

        approval = cls(
            id=id,
            status=status,
            tool=tool,
            connection_id=connection_id,
            user_id=user_id,
            argument_fingerprint=argument_fingerprint,
            expires_at=expires_at,
            tool_call_id=tool_call_id,
        )

        approval.additional_properties = d
        return approval

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
