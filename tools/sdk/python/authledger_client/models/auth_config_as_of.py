from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.auth_config_as_of_auth_type_type_1 import AuthConfigAsOfAuthTypeType1
from ..models.auth_config_as_of_status import AuthConfigAsOfStatus

if TYPE_CHECKING:
    from ..models.auth_config_as_of_settings_type_0 import AuthConfigAsOfSettingsType0


T = TypeVar("T", bound="AuthConfigAsOf")


@_attrs_define
class AuthConfigAsOf:
    """An auth config as it was at `as_of`, rebuilt from its signed events (`?as_of=`): the folded state, without the
    projection's timestamps.

        Attributes:
            id (str):
            as_of (datetime.datetime):
            version (int): The aggregate version it had then
            name (None | str):
            provider (None | str):
            auth_type (AuthConfigAsOfAuthTypeType1 | None):
            status (AuthConfigAsOfStatus):
            settings (AuthConfigAsOfSettingsType0 | None): Settings without secrets, as then
    """

    id: str
    as_of: datetime.datetime
    version: int
    name: None | str
    provider: None | str
    auth_type: AuthConfigAsOfAuthTypeType1 | None
    status: AuthConfigAsOfStatus
    settings: AuthConfigAsOfSettingsType0 | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.auth_config_as_of_settings_type_0 import AuthConfigAsOfSettingsType0  # noqa: PLC0415

        id = self.id

        as_of = self.as_of.isoformat()

        version = self.version

        name: None | str
        name = self.name

        provider: None | str
        provider = self.provider

        auth_type: None | str
        if isinstance(self.auth_type, AuthConfigAsOfAuthTypeType1):
            auth_type = self.auth_type.value
        else:
            auth_type = self.auth_type

        status = self.status.value

        settings: dict[str, Any] | None
        if isinstance(self.settings, AuthConfigAsOfSettingsType0):
            settings = self.settings.to_dict()
        else:
            settings = self.settings

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "as_of": as_of,
                "version": version,
                "name": name,
                "provider": provider,
                "auth_type": auth_type,
                "status": status,
                "settings": settings,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.auth_config_as_of_settings_type_0 import AuthConfigAsOfSettingsType0  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        as_of = datetime.datetime.fromisoformat(d.pop("as_of"))

        version = d.pop("version")

        def _parse_name(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        name = _parse_name(d.pop("name"))

        def _parse_provider(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        provider = _parse_provider(d.pop("provider"))

        def _parse_auth_type(data: object) -> AuthConfigAsOfAuthTypeType1 | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                auth_type_type_1 = AuthConfigAsOfAuthTypeType1(data)

                return auth_type_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(AuthConfigAsOfAuthTypeType1 | None, data)

        auth_type = _parse_auth_type(d.pop("auth_type"))

        status = AuthConfigAsOfStatus(d.pop("status"))

        def _parse_settings(data: object) -> AuthConfigAsOfSettingsType0 | None:
            if data is None:
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                settings_type_0 = AuthConfigAsOfSettingsType0.from_dict(data)

                return settings_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(AuthConfigAsOfSettingsType0 | None, data)

        settings = _parse_settings(d.pop("settings"))

        auth_config_as_of = cls(
            id=id,
            as_of=as_of,
            version=version,
            name=name,
            provider=provider,
            auth_type=auth_type,
            status=status,
            settings=settings,
        )

        auth_config_as_of.additional_properties = d
        return auth_config_as_of

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
