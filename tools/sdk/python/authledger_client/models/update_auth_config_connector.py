from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.dynamic_credentials_policy import DynamicCredentialsPolicy
    from ..models.update_auth_config_connector_settings import UpdateAuthConfigConnectorSettings


T = TypeVar("T", bound="UpdateAuthConfigConnector")


@_attrs_define
class UpdateAuthConfigConnector:
    """For auth_type connector: a connector definition's id (src/connectors/definitions; on update it may be left out and
    cannot change) and the values of its config fields, checked against the definition (a 422 names the field).

        Attributes:
            id (str | Unset):
            settings (UpdateAuthConfigConnectorSettings | Unset):
            dynamic_credentials (DynamicCredentialsPolicy | Unset): Dynamic database credentials for agents (PostgreSQL and
                MySQL connectors only): the stored connection credential is an administrative one; agents ask POST
                /v1/connections/{id}/dynamic-credentials for a database user with some of these named grants, for at most
                max_ttl_seconds. On update, left out keeps the policy as it is.
    """

    id: str | Unset = UNSET
    settings: UpdateAuthConfigConnectorSettings | Unset = UNSET
    dynamic_credentials: DynamicCredentialsPolicy | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        settings: dict[str, Any] | Unset = UNSET
        if not isinstance(self.settings, Unset):
            settings = self.settings.to_dict()

        dynamic_credentials: dict[str, Any] | Unset = UNSET
        if not isinstance(self.dynamic_credentials, Unset):
            dynamic_credentials = self.dynamic_credentials.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if settings is not UNSET:
            field_dict["settings"] = settings
        if dynamic_credentials is not UNSET:
            field_dict["dynamic_credentials"] = dynamic_credentials

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.dynamic_credentials_policy import DynamicCredentialsPolicy  # noqa: PLC0415
        from ..models.update_auth_config_connector_settings import UpdateAuthConfigConnectorSettings  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id", UNSET)

        _settings = d.pop("settings", UNSET)
        settings: UpdateAuthConfigConnectorSettings | Unset
        if isinstance(_settings, Unset):
            settings = UNSET
        else:
            settings = UpdateAuthConfigConnectorSettings.from_dict(_settings)

        _dynamic_credentials = d.pop("dynamic_credentials", UNSET)
        dynamic_credentials: DynamicCredentialsPolicy | Unset
        if isinstance(_dynamic_credentials, Unset):
            dynamic_credentials = UNSET
        else:
            dynamic_credentials = DynamicCredentialsPolicy.from_dict(_dynamic_credentials)

        update_auth_config_connector = cls(
            id=id,
            settings=settings,
            dynamic_credentials=dynamic_credentials,
        )

        return update_auth_config_connector
