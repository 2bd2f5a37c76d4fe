from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.connection_status import ConnectionStatus

T = TypeVar("T", bound="ConnectionAsOf")


@_attrs_define
class ConnectionAsOf:
    """A connection as it was at `as_of`, rebuilt from its signed events (`?as_of=`). Never a token or credential.

    Attributes:
        id (str):
        as_of (datetime.datetime):
        version (int): The aggregate version it had then
        auth_config_id (None | str):
        user_id (None | str):
        status (ConnectionStatus):
        status_reason (None | str):
        scopes (list[str]):
        requested_scopes (list[str]):
        redirect_url (None | str):
        expires_at (datetime.datetime | None):
        has_refresh_token (bool):
    """

    id: str
    as_of: datetime.datetime
    version: int
    auth_config_id: None | str
    user_id: None | str
    status: ConnectionStatus
    status_reason: None | str
    scopes: list[str]
    requested_scopes: list[str]
    redirect_url: None | str
    expires_at: datetime.datetime | None
    has_refresh_token: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        as_of = self.as_of.isoformat()

        version = self.version

        auth_config_id: None | str
        auth_config_id = self.auth_config_id

        user_id: None | str
        user_id = self.user_id

        status = self.status.value

        status_reason: None | str
        status_reason = self.status_reason

        scopes = self.scopes

        requested_scopes = self.requested_scopes

        redirect_url: None | str
        redirect_url = self.redirect_url

        expires_at: None | str
        if isinstance(self.expires_at, datetime.datetime):
            expires_at = self.expires_at.isoformat()
        else:
            expires_at = self.expires_at

        has_refresh_token = self.has_refresh_token

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "as_of": as_of,
                "version": version,
                "auth_config_id": auth_config_id,
                "user_id": user_id,
                "status": status,
                "status_reason": status_reason,
                "scopes": scopes,
                "requested_scopes": requested_scopes,
                "redirect_url": redirect_url,
                "expires_at": expires_at,
                "has_refresh_token": has_refresh_token,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        as_of = datetime.datetime.fromisoformat(d.pop("as_of"))

        version = d.pop("version")

        def _parse_auth_config_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        auth_config_id = _parse_auth_config_id(d.pop("auth_config_id"))

        def _parse_user_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        user_id = _parse_user_id(d.pop("user_id"))

        status = ConnectionStatus(d.pop("status"))

        def _parse_status_reason(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        status_reason = _parse_status_reason(d.pop("status_reason"))

        scopes = cast(list[str], d.pop("scopes"))

        requested_scopes = cast(list[str], d.pop("requested_scopes"))

        def _parse_redirect_url(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        redirect_url = _parse_redirect_url(d.pop("redirect_url"))

        def _parse_expires_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                expires_at_type_0 = datetime.datetime.fromisoformat(data)

                return expires_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        expires_at = _parse_expires_at(d.pop("expires_at"))

        has_refresh_token = d.pop("has_refresh_token")

        connection_as_of = cls(
            id=id,
            as_of=as_of,
            version=version,
            auth_config_id=auth_config_id,
            user_id=user_id,
            status=status,
            status_reason=status_reason,
            scopes=scopes,
            requested_scopes=requested_scopes,
            redirect_url=redirect_url,
            expires_at=expires_at,
            has_refresh_token=has_refresh_token,
        )

        connection_as_of.additional_properties = d
        return connection_as_of

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
