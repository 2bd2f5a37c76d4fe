from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.update_auth_config_api_key import UpdateAuthConfigApiKey
    from ..models.update_auth_config_connector import UpdateAuthConfigConnector
    from ..models.update_auth_config_oauth_2 import UpdateAuthConfigOauth2
    from ..models.update_auth_config_postgres import UpdateAuthConfigPostgres


T = TypeVar("T", bound="UpdateAuthConfig")


@_attrs_define
class UpdateAuthConfig:
    """
    Attributes:
        name (str | Unset):
        oauth2 (UpdateAuthConfigOauth2 | Unset):
        api_key (UpdateAuthConfigApiKey | Unset):
        connector (UpdateAuthConfigConnector | Unset): For auth_type connector: a connector definition's id
            (src/connectors/definitions; on update it may be left out and cannot change) and the values of its config
            fields, checked against the definition (a 422 names the field).
        postgres (UpdateAuthConfigPostgres | Unset):
        token_release (bool | Unset): Let agents obtain the upstream access token itself (POST
            /v1/connections/{id}/access-token); off by default; absent: unchanged
        offered (bool | Unset): Offered to the workspace's end users (listed on their My connections at /me/); on by
            default; absent: unchanged
    """

    name: str | Unset = UNSET
    oauth2: UpdateAuthConfigOauth2 | Unset = UNSET
    api_key: UpdateAuthConfigApiKey | Unset = UNSET
    connector: UpdateAuthConfigConnector | Unset = UNSET
    postgres: UpdateAuthConfigPostgres | Unset = UNSET
    token_release: bool | Unset = UNSET
    offered: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        oauth2: dict[str, Any] | Unset = UNSET
        if not isinstance(self.oauth2, Unset):
            oauth2 = self.oauth2.to_dict()

        api_key: dict[str, Any] | Unset = UNSET
        if not isinstance(self.api_key, Unset):
            api_key = self.api_key.to_dict()

        connector: dict[str, Any] | Unset = UNSET
        if not isinstance(self.connector, Unset):
            connector = self.connector.to_dict()

        postgres: dict[str, Any] | Unset = UNSET
        if not isinstance(self.postgres, Unset):
            postgres = self.postgres.to_dict()

        token_release = self.token_release

        offered = self.offered

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if name is not UNSET:
            field_dict["name"] = name
        if oauth2 is not UNSET:
            field_dict["oauth2"] = oauth2
        if api_key is not UNSET:
            field_dict["api_key"] = api_key
        if connector is not UNSET:
            field_dict["connector"] = connector
        if postgres is not UNSET:
            field_dict["postgres"] = postgres
        if token_release is not UNSET:
            field_dict["token_release"] = token_release
        if offered is not UNSET:
            field_dict["offered"] = offered

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.update_auth_config_api_key import UpdateAuthConfigApiKey  # noqa: PLC0415
        from ..models.update_auth_config_connector import UpdateAuthConfigConnector  # noqa: PLC0415
        from ..models.update_auth_config_oauth_2 import UpdateAuthConfigOauth2  # noqa: PLC0415
        from ..models.update_auth_config_postgres import UpdateAuthConfigPostgres  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name", UNSET)

        _oauth2 = d.pop("oauth2", UNSET)
        oauth2: UpdateAuthConfigOauth2 | Unset
        if isinstance(_oauth2, Unset):
            oauth2 = UNSET
        else:
            oauth2 = UpdateAuthConfigOauth2.from_dict(_oauth2)

        _api_key = d.pop("api_key", UNSET)
        api_key: UpdateAuthConfigApiKey | Unset
        if isinstance(_api_key, Unset):
            api_key = UNSET
        else:
            api_key = UpdateAuthConfigApiKey.from_dict(_api_key)

        _connector = d.pop("connector", UNSET)
        connector: UpdateAuthConfigConnector | Unset
        if isinstance(_connector, Unset):
            connector = UNSET
        else:
            connector = UpdateAuthConfigConnector.from_dict(_connector)

        _postgres = d.pop("postgres", UNSET)
        postgres: UpdateAuthConfigPostgres | Unset
        if isinstance(_postgres, Unset):
            postgres = UNSET
        else:
            postgres = UpdateAuthConfigPostgres.from_dict(_postgres)

        token_release = d.pop("token_release", UNSET)

        offered = d.pop("offered", UNSET)

        update_auth_config = cls(
            name=name,
            oauth2=oauth2,
            api_key=api_key,
            connector=connector,
            postgres=postgres,
            token_release=token_release,
            offered=offered,
        )

        return update_auth_config
