from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.member_role import MemberRole
from ..models.member_status import MemberStatus

T = TypeVar("T", bound="InviteMemberResponse201")


@_attrs_define
class InviteMemberResponse201:
    """
    Attributes:
        id (str):
        email (str):
        role (MemberRole):
        status (MemberStatus):
        second_factor (bool):
        invited_at (datetime.datetime):
        invite_expires_at (datetime.datetime | None):
        joined_at (datetime.datetime | None):
        last_signed_in_at (datetime.datetime | None):
        sign_up_url (str):
    """

    id: str
    email: str
    role: MemberRole
    status: MemberStatus
    second_factor: bool
    invited_at: datetime.datetime
    invite_expires_at: datetime.datetime | None
    joined_at: datetime.datetime | None
    last_signed_in_at: datetime.datetime | None
    sign_up_url: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        email = self.email

        role = self.role.value

        status = self.status.value

        second_factor = self.second_factor

        invited_at = self.invited_at.isoformat()

        invite_expires_at: None | str
        if isinstance(self.invite_expires_at, datetime.datetime):
            invite_expires_at = self.invite_expires_at.isoformat()
        else:
            invite_expires_at = self.invite_expires_at

        joined_at: None | str
        if isinstance(self.joined_at, datetime.datetime):
            joined_at = self.joined_at.isoformat()
        else:
            joined_at = self.joined_at

        last_signed_in_at: None | str
        if isinstance(self.last_signed_in_at, datetime.datetime):
            last_signed_in_at = self.last_signed_in_at.isoformat()
        else:
            last_signed_in_at = self.last_signed_in_at

        sign_up_url = self.sign_up_url

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "email": email,
                "role": role,
                "status": status,
                "second_factor": second_factor,
                "invited_at": invited_at,
                "invite_expires_at": invite_expires_at,
                "joined_at": joined_at,
                "last_signed_in_at": last_signed_in_at,
                "sign_up_url": sign_up_url,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        email = d.pop("email")

        role = MemberRole(d.pop("role"))

        status = MemberStatus(d.pop("status"))

        second_factor = d.pop("second_factor")

        invited_at = datetime.datetime.fromisoformat(d.pop("invited_at"))

        def _parse_invite_expires_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                invite_expires_at_type_0 = datetime.datetime.fromisoformat(data)

                return invite_expires_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        invite_expires_at = _parse_invite_expires_at(d.pop("invite_expires_at"))

        def _parse_joined_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                joined_at_type_0 = datetime.datetime.fromisoformat(data)

                return joined_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        joined_at = _parse_joined_at(d.pop("joined_at"))

        def _parse_last_signed_in_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                last_signed_in_at_type_0 = datetime.datetime.fromisoformat(data)

                return last_signed_in_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        last_signed_in_at = _parse_last_signed_in_at(d.pop("last_signed_in_at"))

        sign_up_url = d.pop("sign_up_url")

        invite_member_response_201 = cls(
            id=id,
            email=email,
            role=role,
            status=status,
            second_factor=second_factor,
            invited_at=invited_at,
            invite_expires_at=invite_expires_at,
            joined_at=joined_at,
            last_signed_in_at=last_signed_in_at,
            sign_up_url=sign_up_url,
        )

        invite_member_response_201.additional_properties = d
        return invite_member_response_201

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
