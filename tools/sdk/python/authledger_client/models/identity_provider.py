from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="IdentityProvider")


@_attrs_define
class IdentityProvider:
    """
    Attributes:
        issuer (str):
        audience (str):
        jwks_url (str): https://, or http:// on the loopback interface only
        client_id (None | str | Unset): The client id the provider issued for end users' browser sign-in at /me/
            (redirect URI: {public_url}/me/callback); the issuer must then be its OpenID Connect issuer URL. Absent keeps
            the one configured (and its secret); null or empty turns browser sign-in off and shreds its secret
        client_secret (str | Unset): Sealed when stored; absent keeps the one configured
        client_secret_fingerprint (str | Unset):
    """

    issuer: str
    audience: str
    jwks_url: str
    client_id: None | str | Unset = UNSET
    client_secret: str | Unset = UNSET
    client_secret_fingerprint: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        issuer = self.issuer

        audience = self.audience

        jwks_url = self.jwks_url

        client_id: None | str | Unset
        if isinstance(self.client_id, Unset):
            client_id = UNSET
        else:
            client_id = self.client_id

        client_secret = self.client_secret

        client_secret_fingerprint = self.client_secret_fingerprint

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "issuer": issuer,
                "audience": audience,
                "jwks_url": jwks_url,
            }
        )
        if client_id is not UNSET:
            field_dict["client_id"] = client_id
        if client_secret is not UNSET:
            field_dict["client_secret"] = client_secret
        if client_secret_fingerprint is not UNSET:
            field_dict["client_secret_fingerprint"] = client_secret_fingerprint

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        issuer = d.pop("issuer")

        audience = d.pop("audience")

        jwks_url = d.pop("jwks_url")

        def _parse_client_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        client_id = _parse_client_id(d.pop("client_id", UNSET))

        client_secret = d.pop("client_secret", UNSET)

        client_secret_fingerprint = d.pop("client_secret_fingerprint", UNSET)

        identity_provider = cls(
            issuer=issuer,
            audience=audience,
            jwks_url=jwks_url,
            client_id=client_id,
            client_secret=client_secret,
            client_secret_fingerprint=client_secret_fingerprint,
        )

        return identity_provider
