from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="DynamicCredential")


@_attrs_define
class DynamicCredential:
    """A database user made for the caller. The password is shown once: it is in no event, projection or log.

    Attributes:
        id (str):
        connection_id (str):
        username (str):
        password (str):
        host (str):
        port (int):
        database (str):
        grants (list[str]):
        expires_at (datetime.datetime):
    """

    id: str
    connection_id: str
    username: str
    password: str
    host: str
    port: int
    database: str
    grants: list[str]
    expires_at: datetime.datetime

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        connection_id = self.connection_id

        username = self.username

        password = self.password

        host = self.host

        port = self.port

        database = self.database

        grants = self.grants

        expires_at = self.expires_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "connection_id": connection_id,
                "username": username,
                "password": password,
                "host": host,
                "port": port,
                "database": database,
                "grants": grants,
                "expires_at": expires_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        connection_id = d.pop("connection_id")

        username = d.pop("username")

        password = d.pop("password")

        host = d.pop("host")

        port = d.pop("port")

        database = d.pop("database")

        grants = cast(list[str], d.pop("grants"))

        expires_at = datetime.datetime.fromisoformat(d.pop("expires_at"))

        dynamic_credential = cls(
            id=id,
            connection_id=connection_id,
            username=username,
            password=password,
            host=host,
            port=port,
            database=database,
            grants=grants,
            expires_at=expires_at,
        )

        return dynamic_credential
