from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ScopedTokenRequest")


@_attrs_define
class ScopedTokenRequest:
    """Name the connection by connection_id, or by user_id + auth_config_id (the user's active connection; without one: 409
    connection-required with connect_url).

        Attributes:
            connection_id (str | Unset):
            user_id (str | Unset):
            auth_config_id (str | Unset):
            scopes (list[str] | Unset): A subset of the connection's granted scopes; default: the tool's required scopes
            tool (str | Unset): Bind the token to one tool
            ttl_seconds (int | Unset):  Default: 300.
            max_uses (int | Unset):
    """

    connection_id: str | Unset = UNSET
    user_id: str | Unset = UNSET
    auth_config_id: str | Unset = UNSET
    scopes: list[str] | Unset = UNSET
    tool: str | Unset = UNSET
    ttl_seconds: int | Unset = 300
    max_uses: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        connection_id = self.connection_id

        user_id = self.user_id

        auth_config_id = self.auth_config_id

        scopes: list[str] | Unset = UNSET
        if not isinstance(self.scopes, Unset):
            scopes = self.scopes

        tool = self.tool

        ttl_seconds = self.ttl_seconds

        max_uses = self.max_uses

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if connection_id is not UNSET:
            field_dict["connection_id"] = connection_id
        if user_id is not UNSET:
            field_dict["user_id"] = user_id
        if auth_config_id is not UNSET:
            field_dict["auth_config_id"] = auth_config_id
        if scopes is not UNSET:
            field_dict["scopes"] = scopes
        if tool is not UNSET:
            field_dict["tool"] = tool
        if ttl_seconds is not UNSET:
            field_dict["ttl_seconds"] = ttl_seconds
        if max_uses is not UNSET:
            field_dict["max_uses"] = max_uses

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        connection_id = d.pop("connection_id", UNSET)

        user_id = d.pop("user_id", UNSET)

        auth_config_id = d.pop("auth_config_id", UNSET)

        scopes = cast(list[str], d.pop("scopes", UNSET))

        tool = d.pop("tool", UNSET)

        ttl_seconds = d.pop("ttl_seconds", UNSET)

        max_uses = d.pop("max_uses", UNSET)

        scoped_token_request = cls(
            connection_id=connection_id,
            user_id=user_id,
            auth_config_id=auth_config_id,
            scopes=scopes,
            tool=tool,
            ttl_seconds=ttl_seconds,
            max_uses=max_uses,
        )

        return scoped_token_request
