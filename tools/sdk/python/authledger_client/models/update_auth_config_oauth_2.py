from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.update_auth_config_oauth_2_client_auth_method import UpdateAuthConfigOauth2ClientAuthMethod
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.update_auth_config_oauth_2_extra_authorize_params import UpdateAuthConfigOauth2ExtraAuthorizeParams


T = TypeVar("T", bound="UpdateAuthConfigOauth2")


@_attrs_define
class UpdateAuthConfigOauth2:
    """
    Attributes:
        client_id (str | Unset):
        client_secret (str | Unset):
        scopes (list[str] | Unset):
        redirect_urls (list[str] | Unset):
        authorization_url (str | Unset):
        token_url (str | Unset):
        revocation_url (str | Unset):
        client_auth_method (UpdateAuthConfigOauth2ClientAuthMethod | Unset):
        pkce (bool | Unset):
        extra_authorize_params (UpdateAuthConfigOauth2ExtraAuthorizeParams | Unset):
    """

    client_id: str | Unset = UNSET
    client_secret: str | Unset = UNSET
    scopes: list[str] | Unset = UNSET
    redirect_urls: list[str] | Unset = UNSET
    authorization_url: str | Unset = UNSET
    token_url: str | Unset = UNSET
    revocation_url: str | Unset = UNSET
    client_auth_method: UpdateAuthConfigOauth2ClientAuthMethod | Unset = UNSET
    pkce: bool | Unset = UNSET
    extra_authorize_params: UpdateAuthConfigOauth2ExtraAuthorizeParams | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        client_id = self.client_id

        client_secret = self.client_secret

        scopes: list[str] | Unset = UNSET
        if not isinstance(self.scopes, Unset):
            scopes = self.scopes

        redirect_urls: list[str] | Unset = UNSET
        if not isinstance(self.redirect_urls, Unset):
            redirect_urls = self.redirect_urls

        authorization_url = self.authorization_url

        token_url = self.token_url

        revocation_url = self.revocation_url

        client_auth_method: str | Unset = UNSET
        if not isinstance(self.client_auth_method, Unset):
            client_auth_method = self.client_auth_method.value

        pkce = self.pkce

        extra_authorize_params: dict[str, Any] | Unset = UNSET
        if not isinstance(self.extra_authorize_params, Unset):
            extra_authorize_params = self.extra_authorize_params.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if client_id is not UNSET:
            field_dict["client_id"] = client_id
        if client_secret is not UNSET:
            field_dict["client_secret"] = client_secret
        if scopes is not UNSET:
            field_dict["scopes"] = scopes
        if redirect_urls is not UNSET:
            field_dict["redirect_urls"] = redirect_urls
        if authorization_url is not UNSET:
            field_dict["authorization_url"] = authorization_url
        if token_url is not UNSET:
            field_dict["token_url"] = token_url
        if revocation_url is not UNSET:
            field_dict["revocation_url"] = revocation_url
        if client_auth_method is not UNSET:
            field_dict["client_auth_method"] = client_auth_method
        if pkce is not UNSET:
            field_dict["pkce"] = pkce
        if extra_authorize_params is not UNSET:
            field_dict["extra_authorize_params"] = extra_authorize_params

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.update_auth_config_oauth_2_extra_authorize_params import (
            UpdateAuthConfigOauth2ExtraAuthorizeParams,  # noqa: PLC0415
        )

        d = dict(src_dict)
        client_id = d.pop("client_id", UNSET)

        client_secret = d.pop("client_secret", UNSET)

        scopes = cast(list[str], d.pop("scopes", UNSET))

        redirect_urls = cast(list[str], d.pop("redirect_urls", UNSET))

        authorization_url = d.pop("authorization_url", UNSET)

        token_url = d.pop("token_url", UNSET)

        revocation_url = d.pop("revocation_url", UNSET)

        _client_auth_method = d.pop("client_auth_method", UNSET)
        client_auth_method: UpdateAuthConfigOauth2ClientAuthMethod | Unset
        if isinstance(_client_auth_method, Unset):
            client_auth_method = UNSET
        else:
            client_auth_method = UpdateAuthConfigOauth2ClientAuthMethod(_client_auth_method)

        pkce = d.pop("pkce", UNSET)

        _extra_authorize_params = d.pop("extra_authorize_params", UNSET)
        extra_authorize_params: UpdateAuthConfigOauth2ExtraAuthorizeParams | Unset
        if isinstance(_extra_authorize_params, Unset):
            extra_authorize_params = UNSET
        else:
            extra_authorize_params = UpdateAuthConfigOauth2ExtraAuthorizeParams.from_dict(_extra_authorize_params)

        update_auth_config_oauth_2 = cls(
            client_id=client_id,
            client_secret=client_secret,
            scopes=scopes,
            redirect_urls=redirect_urls,
            authorization_url=authorization_url,
            token_url=token_url,
            revocation_url=revocation_url,
            client_auth_method=client_auth_method,
            pkce=pkce,
            extra_authorize_params=extra_authorize_params,
        )

        return update_auth_config_oauth_2
