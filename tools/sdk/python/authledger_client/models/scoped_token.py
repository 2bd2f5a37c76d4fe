from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.scoped_token_status import ScopedTokenStatus
from ..types import UNSET, Unset

T = TypeVar("T", bound="ScopedToken")


@_attrs_define
class ScopedToken:
    """
    Attributes:
        id (str | Unset):
        status (ScopedTokenStatus | Unset):
        token (str | Unset): JWS (EdDSA, typ at+jwt), shown once at issuance; verify with /.well-known/jwks.json
        token_type (Literal['Bearer'] | Unset):
        issued_event_id (str | Unset):
        connection_id (str | Unset):
        auth_config_id (str | Unset):
        user_id (str | Unset):
        scopes (list[str] | Unset):
        tool (None | str | Unset):
        expires_at (datetime.datetime | Unset):
        max_uses (int | None | Unset):
        uses (int | Unset):
        fingerprint (str | Unset):
    """

    id: str | Unset = UNSET
    status: ScopedTokenStatus | Unset = UNSET
    token: str | Unset = UNSET
    token_type: Literal["Bearer"] | Unset = UNSET
    issued_event_id: str | Unset = UNSET
    connection_id: str | Unset = UNSET
    auth_config_id: str | Unset = UNSET
    user_id: str | Unset = UNSET
    scopes: list[str] | Unset = UNSET
    tool: None | str | Unset = UNSET
    expires_at: datetime.datetime | Unset = UNSET
    max_uses: int | None | Unset = UNSET
    uses: int | Unset = UNSET
    fingerprint: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        status: str | Unset = UNSET
        if not isinstance(self.status, Unset):
            status = self.status.value

        token = self.token

        token_type = self.token_type

        issued_event_id = self.issued_event_id

        connection_id = self.connection_id

        auth_config_id = self.auth_config_id

        user_id = self.user_id

        scopes: list[str] | Unset = UNSET
        if not isinstance(self.scopes, Unset):
            scopes = self.scopes

        tool: None | str | Unset
        if isinstance(self.tool, Unset):
            tool = UNSET
        else:
            tool = self.tool

        expires_at: str | Unset = UNSET
        if not isinstance(self.expires_at, Unset):
            expires_at = self.expires_at.isoformat()

        max_uses: int | None | Unset
        if isinstance(self.max_uses, Unset):
            max_uses = UNSET
        else:
            max_uses = self.max_uses

        uses = self.uses

        fingerprint = self.fingerprint

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if status is not UNSET:
            field_dict["status"] = status
        if token is not UNSET:
            field_dict["token"] = token
        if token_type is not UNSET:
            field_dict["token_type"] = token_type
        if issued_event_id is not UNSET:
            field_dict["issued_event_id"] = issued_event_id
        if connection_id is not UNSET:
            field_dict["connection_id"] = connection_id
        if auth_config_id is not UNSET:
            field_dict["auth_config_id"] = auth_config_id
        if user_id is not UNSET:
            field_dict["user_id"] = user_id
        if scopes is not UNSET:
            field_dict["scopes"] = scopes
        if tool is not UNSET:
            field_dict["tool"] = tool
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if max_uses is not UNSET:
            field_dict["max_uses"] = max_uses
        if uses is not UNSET:
            field_dict["uses"] = uses
        if fingerprint is not UNSET:
            field_dict["fingerprint"] = fingerprint

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id", UNSET)

        _status = d.pop("status", UNSET)
        status: ScopedTokenStatus | Unset
        if isinstance(_status, Unset):
            status = UNSET
        else:
            status = ScopedTokenStatus(_status)

        token = d.pop("token", UNSET)

        token_type = cast(Literal["Bearer"] | Unset, d.pop("token_type", UNSET))
        if token_type != "Bearer" and not isinstance(token_type, Unset):
            raise ValueError(f"token_type must match const 'Bearer', got '{token_type}'")

        issued_event_id = d.pop("issued_event_id", UNSET)

        connection_id = d.pop("connection_id", UNSET)

        auth_config_id = d.pop("auth_config_id", UNSET)

        user_id = d.pop("user_id", UNSET)

        scopes = cast(list[str], d.pop("scopes", UNSET))

        def _parse_tool(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tool = _parse_tool(d.pop("tool", UNSET))

        _expires_at = d.pop("expires_at", UNSET)
        expires_at: datetime.datetime | Unset
        if isinstance(_expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = datetime.datetime.fromisoformat(_expires_at)

        def _parse_max_uses(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_uses = _parse_max_uses(d.pop("max_uses", UNSET))

        uses = d.pop("uses", UNSET)

        fingerprint = d.pop("fingerprint", UNSET)

        scoped_token = cls(
            id=id,
            status=status,
            token=token,
            token_type=token_type,
            issued_event_id=issued_event_id,
            connection_id=connection_id,
            auth_config_id=auth_config_id,
            user_id=user_id,
            scopes=scopes,
            tool=tool,
            expires_at=expires_at,
            max_uses=max_uses,
            uses=uses,
            fingerprint=fingerprint,
        )

        scoped_token.additional_properties = d
        return scoped_token

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
