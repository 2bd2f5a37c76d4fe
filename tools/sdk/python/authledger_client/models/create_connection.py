from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.api_key_credentials import ApiKeyCredentials
    from ..models.basic_credentials import BasicCredentials
    from ..models.bearer_token_credentials import BearerTokenCredentials
    from ..models.connector import Connector
    from ..models.create_connection_no_auth import CreateConnectionNoAuth
    from ..models.postgres_credentials import PostgresCredentials


T = TypeVar("T", bound="CreateConnection")


@_attrs_define
class CreateConnection:
    """oauth2 auth configs: `redirect_url` (and optionally `scopes`), no `credentials`; the answer carries `connect_url`.
    Other auth types: `credentials` shaped by the auth type (none for no_auth), no `redirect_url` or `scopes`; the
    connection is active at once. Or, for api_key, bearer_token, basic and postgres, no `credentials` (optionally
    `redirect_url`): the connection is `initiated` and `connect_url` is the hosted connect page
    (`{public_url}/connect/{link}`), a single-use link valid 30 minutes. Errors never echo a credential.

        Attributes:
            auth_config_id (str): An enabled auth config of the workspace
            user_id (str): Your id of the end user
            redirect_url (str | Unset): oauth2, required: where the end user returns after the callback; must exactly match
                one of the auth config's `redirect_urls`. A hosted connect link (other auth types, no `credentials`), optional:
                where the page sends the end user when done (https, plain http only to loopback where allowed; default:
                authledger's own page)
            scopes (list[str] | Unset): oauth2 only: a subset of the auth config's scopes (default: all)
            credentials (ApiKeyCredentials | BasicCredentials | BearerTokenCredentials | Connector | CreateConnectionNoAuth
                | PostgresCredentials | Unset): Non-oauth2 only: the end user's credentials (sealed; never returned)
    """

    auth_config_id: str
    user_id: str
    redirect_url: str | Unset = UNSET
    scopes: list[str] | Unset = UNSET
    credentials: (
        ApiKeyCredentials
        | BasicCredentials
        | BearerTokenCredentials
        | Connector
        | CreateConnectionNoAuth
        | PostgresCredentials
        | Unset
    ) = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.api_key_credentials import ApiKeyCredentials  # noqa: PLC0415
        from ..models.basic_credentials import BasicCredentials  # noqa: PLC0415
        from ..models.bearer_token_credentials import BearerTokenCredentials  # noqa: PLC0415
        from ..models.connector import Connector  # noqa: PLC0415
        from ..models.postgres_credentials import PostgresCredentials  # noqa: PLC0415

        auth_config_id = self.auth_config_id

        user_id = self.user_id

        redirect_url = self.redirect_url

        scopes: list[str] | Unset = UNSET
        if not isinstance(self.scopes, Unset):
            scopes = self.scopes

        credentials: dict[str, Any] | Unset
        if isinstance(self.credentials, Unset):
            credentials = UNSET
        elif isinstance(self.credentials, ApiKeyCredentials):
            credentials = self.credentials.to_dict()
        elif isinstance(self.credentials, BearerTokenCredentials):
            credentials = self.credentials.to_dict()
        elif isinstance(self.credentials, BasicCredentials):
            credentials = self.credentials.to_dict()
        elif isinstance(self.credentials, PostgresCredentials):
            credentials = self.credentials.to_dict()
        elif isinstance(self.credentials, Connector):
            credentials = self.credentials.to_dict()
        else:
            credentials = self.credentials.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "auth_config_id": auth_config_id,
                "user_id": user_id,
            }
        )
        if redirect_url is not UNSET:
            field_dict["redirect_url"] = redirect_url
        if scopes is not UNSET:
            field_dict["scopes"] = scopes
        if credentials is not UNSET:
            field_dict["credentials"] = credentials

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.api_key_credentials import ApiKeyCredentials  # noqa: PLC0415
        from ..models.basic_credentials import BasicCredentials  # noqa: PLC0415
        from ..models.bearer_token_credentials import BearerTokenCredentials  # noqa: PLC0415
        from ..models.connector import Connector  # noqa: PLC0415
        from ..models.create_connection_no_auth import CreateConnectionNoAuth  # noqa: PLC0415
        from ..models.postgres_credentials import PostgresCredentials  # noqa: PLC0415

        d = dict(src_dict)
        auth_config_id = d.pop("auth_config_id")

        user_id = d.pop("user_id")

        redirect_url = d.pop("redirect_url", UNSET)

        scopes = cast(list[str], d.pop("scopes", UNSET))

        def _parse_credentials(
            data: object,
        ) -> (
            ApiKeyCredentials
            | BasicCredentials
            | BearerTokenCredentials
            | Connector
            | CreateConnectionNoAuth
            | PostgresCredentials
            | Unset
        ):
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                credentials_type_0 = ApiKeyCredentials.from_dict(data)

                return credentials_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                credentials_type_1 = BearerTokenCredentials.from_dict(data)

                return credentials_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                credentials_type_2 = BasicCredentials.from_dict(data)

                return credentials_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                credentials_type_3 = PostgresCredentials.from_dict(data)

                return credentials_type_3
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                credentials_type_4 = Connector.from_dict(data)

                return credentials_type_4
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            credentials_no_auth = CreateConnectionNoAuth.from_dict(data)

            return credentials_no_auth

        credentials = _parse_credentials(d.pop("credentials", UNSET))

        create_connection = cls(
            auth_config_id=auth_config_id,
            user_id=user_id,
            redirect_url=redirect_url,
            scopes=scopes,
            credentials=credentials,
        )

        return create_connection
