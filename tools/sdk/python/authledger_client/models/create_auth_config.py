from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.create_auth_config_auth_type import CreateAuthConfigAuthType
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.create_auth_config_api_key import CreateAuthConfigApiKey
    from ..models.create_auth_config_basic import CreateAuthConfigBasic
    from ..models.create_auth_config_bearer_token import CreateAuthConfigBearerToken
    from ..models.create_auth_config_connector import CreateAuthConfigConnector
    from ..models.create_auth_config_no_auth import CreateAuthConfigNoAuth
    from ..models.create_auth_config_oauth_2 import CreateAuthConfigOauth2
    from ..models.create_auth_config_postgres import CreateAuthConfigPostgres


T = TypeVar("T", bound="CreateAuthConfig")


@_attrs_define
class CreateAuthConfig:
    """
    Attributes:
        name (str):
        provider (str): A catalog provider id (endpoints pre-filled) or custom
        auth_type (CreateAuthConfigAuthType):
        oauth2 (CreateAuthConfigOauth2 | Unset):
        api_key (CreateAuthConfigApiKey | Unset):
        connector (CreateAuthConfigConnector | Unset): For auth_type connector: a connector definition's id
            (src/connectors/definitions; on update it may be left out and cannot change) and the values of its config
            fields, checked against the definition (a 422 names the field).
        postgres (CreateAuthConfigPostgres | Unset):
        bearer_token (CreateAuthConfigBearerToken | Unset):
        basic (CreateAuthConfigBasic | Unset):
        no_auth (CreateAuthConfigNoAuth | Unset):
        token_release (bool | Unset): Let agents obtain the upstream access token itself (POST
            /v1/connections/{id}/access-token); off by default
        offered (bool | Unset): Offered to the workspace's end users (listed on their My connections at /me/); on by
            default
    """

    name: str
    provider: str
    auth_type: CreateAuthConfigAuthType
    oauth2: CreateAuthConfigOauth2 | Unset = UNSET
    api_key: CreateAuthConfigApiKey | Unset = UNSET
    connector: CreateAuthConfigConnector | Unset = UNSET
    postgres: CreateAuthConfigPostgres | Unset = UNSET
    bearer_token: CreateAuthConfigBearerToken | Unset = UNSET
    basic: CreateAuthConfigBasic | Unset = UNSET
    no_auth: CreateAuthConfigNoAuth | Unset = UNSET
    token_release: bool | Unset = UNSET
    offered: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        provider = self.provider

        auth_type = self.auth_type.value

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

        bearer_token: dict[str, Any] | Unset = UNSET
        if not isinstance(self.bearer_token, Unset):
            bearer_token = self.bearer_token.to_dict()

        basic: dict[str, Any] | Unset = UNSET
        if not isinstance(self.basic, Unset):
            basic = self.basic.to_dict()

        no_auth: dict[str, Any] | Unset = UNSET
        if not isinstance(self.no_auth, Unset):
            no_auth = self.no_auth.to_dict()

        token_release = self.token_release

        offered = self.offered

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "provider": provider,
                "auth_type": auth_type,
            }
        )
        if oauth2 is not UNSET:
            field_dict["oauth2"] = oauth2
        if api_key is not UNSET:
            field_dict["api_key"] = api_key
        if connector is not UNSET:
            field_dict["connector"] = connector
        if postgres is not UNSET:
            field_dict["postgres"] = postgres
        if bearer_token is not UNSET:
            field_dict["bearer_token"] = bearer_token
        if basic is not UNSET:
            field_dict["basic"] = basic
        if no_auth is not UNSET:
            field_dict["no_auth"] = no_auth
        if token_release is not UNSET:
            field_dict["token_release"] = token_release
        if offered is not UNSET:
            field_dict["offered"] = offered

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.create_auth_config_api_key import CreateAuthConfigApiKey  # noqa: PLC0415
        from ..models.create_auth_config_basic import CreateAuthConfigBasic  # noqa: PLC0415
        from ..models.create_auth_config_bearer_token import CreateAuthConfigBearerToken  # noqa: PLC0415
        from ..models.create_auth_config_connector import CreateAuthConfigConnector  # noqa: PLC0415
        from ..models.create_auth_config_no_auth import CreateAuthConfigNoAuth  # noqa: PLC0415
        from ..models.create_auth_config_oauth_2 import CreateAuthConfigOauth2  # noqa: PLC0415
        from ..models.create_auth_config_postgres import CreateAuthConfigPostgres  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        provider = d.pop("provider")

        auth_type = CreateAuthConfigAuthType(d.pop("auth_type"))

        _oauth2 = d.pop("oauth2", UNSET)
        oauth2: CreateAuthConfigOauth2 | Unset
        if isinstance(_oauth2, Unset):
            oauth2 = UNSET
        else:
            oauth2 = CreateAuthConfigOauth2.from_dict(_oauth2)

        _api_key = d.pop("api_key", UNSET)
        api_key: CreateAuthConfigApiKey | Unset
        if isinstance(_api_key, Unset):
            api_key = UNSET
        else:
            api_key = CreateAuthConfigApiKey.from_dict(_api_key)

        _connector = d.pop("connector", UNSET)
        connector: CreateAuthConfigConnector | Unset
        if isinstance(_connector, Unset):
            connector = UNSET
        else:
            connector = CreateAuthConfigConnector.from_dict(_connector)

        _postgres = d.pop("postgres", UNSET)
        postgres: CreateAuthConfigPostgres | Unset
        if isinstance(_postgres, Unset):
            postgres = UNSET
        else:
            postgres = CreateAuthConfigPostgres.from_dict(_postgres)

        _bearer_token = d.pop("bearer_token", UNSET)
        bearer_token: CreateAuthConfigBearerToken | Unset
        if isinstance(_bearer_token, Unset):
            bearer_token = UNSET
        else:
            bearer_token = CreateAuthConfigBearerToken.from_dict(_bearer_token)

        _basic = d.pop("basic", UNSET)
        basic: CreateAuthConfigBasic | Unset
        if isinstance(_basic, Unset):
            basic = UNSET
        else:
            basic = CreateAuthConfigBasic.from_dict(_basic)

        _no_auth = d.pop("no_auth", UNSET)
        no_auth: CreateAuthConfigNoAuth | Unset
        if isinstance(_no_auth, Unset):
            no_auth = UNSET
        else:
            no_auth = CreateAuthConfigNoAuth.from_dict(_no_auth)

        token_release = d.pop("token_release", UNSET)

        offered = d.pop("offered", UNSET)

        create_auth_config = cls(
            name=name,
            provider=provider,
            auth_type=auth_type,
            oauth2=oauth2,
            api_key=api_key,
            connector=connector,
            postgres=postgres,
            bearer_token=bearer_token,
            basic=basic,
            no_auth=no_auth,
            token_release=token_release,
            offered=offered,
        )

        return create_auth_config
