from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.connection_status import ConnectionStatus
from ..types import UNSET, Unset

T = TypeVar("T", bound="CreatedConnection")


@_attrs_define
class CreatedConnection:
    """
    Attributes:
        id (str):
        auth_config_id (str):
        user_id (str):
        status (ConnectionStatus):
        status_reason (None | str): Why it is in its status (last error, expiry or revocation reason)
        scopes (list[str]): Granted scopes
        requested_scopes (list[str]): Requested scopes (empty for connections made from credentials)
        redirect_url (None | str):
        expires_at (datetime.datetime | None): When the access token expires, if known
        has_refresh_token (bool):
        created_at (datetime.datetime):
        updated_at (datetime.datetime):
        last_refreshed_at (datetime.datetime | None):
        last_used_at (datetime.datetime | None):
        version (int):
        position (int): The log position of the write (as `Authledger-Position`)
        connect_url (str | Unset): oauth2 only: send the end user here (the provider's authorization URL with state and
            PKCE challenge)
        connect_expires_at (datetime.datetime | Unset): oauth2 only: the connect link (its state) is single use and
            expires then (10 minutes)
    """

    id: str
    auth_config_id: str
    user_id: str
    status: ConnectionStatus
    status_reason: None | str
    scopes: list[str]
    requested_scopes: list[str]
    redirect_url: None | str
    expires_at: datetime.datetime | None
    has_refresh_token: bool
    created_at: datetime.datetime
    updated_at: datetime.datetime
    last_refreshed_at: datetime.datetime | None
    last_used_at: datetime.datetime | None
    version: int
    position: int
    connect_url: str | Unset = UNSET
    connect_expires_at: datetime.datetime | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        auth_config_id = self.auth_config_id

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

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        last_refreshed_at: None | str
        if isinstance(self.last_refreshed_at, datetime.datetime):
            last_refreshed_at = self.last_refreshed_at.isoformat()
        else:
            last_refreshed_at = self.last_refreshed_at

        last_used_at: None | str
        if isinstance(self.last_used_at, datetime.datetime):
            last_used_at = self.last_used_at.isoformat()
        else:
            last_used_at = self.last_used_at

        version = self.version

        position = self.position

        connect_url = self.connect_url

        connect_expires_at: str | Unset = UNSET
        if not isinstance(self.connect_expires_at, Unset):
            connect_expires_at = self.connect_expires_at.isoformat()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "auth_config_id": auth_config_id,
                "user_id": user_id,
                "status": status,
                "status_reason": status_reason,
                "scopes": scopes,
                "requested_scopes": requested_scopes,
                "redirect_url": redirect_url,
                "expires_at": expires_at,
                "has_refresh_token": has_refresh_token,
                "created_at": created_at,
                "updated_at": updated_at,
                "last_refreshed_at": last_refreshed_at,
                "last_used_at": last_used_at,
                "version": version,
                "position": position,
            }
        )
        if connect_url is not UNSET:
            field_dict["connect_url"] = connect_url
        if connect_expires_at is not UNSET:
            field_dict["connect_expires_at"] = connect_expires_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        auth_config_id = d.pop("auth_config_id")

        user_id = d.pop("user_id")

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

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        def _parse_last_refreshed_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                last_refreshed_at_type_0 = datetime.datetime.fromisoformat(data)

                return last_refreshed_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        last_refreshed_at = _parse_last_refreshed_at(d.pop("last_refreshed_at"))

        def _parse_last_used_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                last_used_at_type_0 = datetime.datetime.fromisoformat(data)

                return last_used_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        last_used_at = _parse_last_used_at(d.pop("last_used_at"))

        version = d.pop("version")

        position = d.pop("position")

        connect_url = d.pop("connect_url", UNSET)

        _connect_expires_at = d.pop("connect_expires_at", UNSET)
        connect_expires_at: datetime.datetime | Unset
        if isinstance(_connect_expires_at, Unset):
            connect_expires_at = UNSET
        else:
            connect_expires_at = datetime.datetime.fromisoformat(_connect_expires_at)

        created_connection = cls(
            id=id,
            auth_config_id=auth_config_id,
            user_id=user_id,
            status=status,
            status_reason=status_reason,
            scopes=scopes,
            requested_scopes=requested_scopes,
            redirect_url=redirect_url,
            expires_at=expires_at,
            has_refresh_token=has_refresh_token,
            created_at=created_at,
            updated_at=updated_at,
            last_refreshed_at=last_refreshed_at,
            last_used_at=last_used_at,
            version=version,
            position=position,
            connect_url=connect_url,
            connect_expires_at=connect_expires_at,
        )

        created_connection.additional_properties = d
        return created_connection

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
