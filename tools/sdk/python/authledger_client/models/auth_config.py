from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.auth_config_auth_type import AuthConfigAuthType
from ..models.auth_config_status import AuthConfigStatus

if TYPE_CHECKING:
    from ..models.auth_config_settings import AuthConfigSettings


T = TypeVar("T", bound="AuthConfig")


@_attrs_define
class AuthConfig:
    """
    Attributes:
        id (str):
        name (str):
        provider (str):
        auth_type (AuthConfigAuthType):
        status (AuthConfigStatus):
        version (int):
        settings (AuthConfigSettings): Settings without secrets: a client secret appears only as {fingerprint}
        created_at (datetime.datetime):
        updated_at (datetime.datetime):
    """

    id: str
    name: str
    provider: str
    auth_type: AuthConfigAuthType
    status: AuthConfigStatus
    version: int
    settings: AuthConfigSettings
    created_at: datetime.datetime
    updated_at: datetime.datetime
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name = self.name

        provider = self.provider

        auth_type = self.auth_type.value

        status = self.status.value

        version = self.version

        settings = self.settings.to_dict()

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "name": name,
                "provider": provider,
                "auth_type": auth_type,
                "status": status,
                "version": version,
                "settings": settings,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.auth_config_settings import AuthConfigSettings  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        provider = d.pop("provider")

        auth_type = AuthConfigAuthType(d.pop("auth_type"))

        status = AuthConfigStatus(d.pop("status"))

        version = d.pop("version")

        settings = AuthConfigSettings.from_dict(d.pop("settings"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        auth_config = cls(
            id=id,
            name=name,
            provider=provider,
            auth_type=auth_type,
            status=status,
            version=version,
            settings=settings,
            created_at=created_at,
            updated_at=updated_at,
        )

        auth_config.additional_properties = d
        return auth_config

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
