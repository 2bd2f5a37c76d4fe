from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.create_auth_config_postgres_ssl_mode import CreateAuthConfigPostgresSslMode

T = TypeVar("T", bound="CreateAuthConfigPostgres")


@_attrs_define
class CreateAuthConfigPostgres:
    """
    Attributes:
        host (str):
        port (int):
        database (str):
        ssl_mode (CreateAuthConfigPostgresSslMode):
    """

    host: str
    port: int
    database: str
    ssl_mode: CreateAuthConfigPostgresSslMode

    def to_dict(self) -> dict[str, Any]:
        host = self.host

        port = self.port

        database = self.database

        ssl_mode = self.ssl_mode.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "host": host,
                "port": port,
                "database": database,
                "ssl_mode": ssl_mode,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        host = d.pop("host")

        port = d.pop("port")

        database = d.pop("database")

        ssl_mode = CreateAuthConfigPostgresSslMode(d.pop("ssl_mode"))

        create_auth_config_postgres = cls(
            host=host,
            port=port,
            database=database,
            ssl_mode=ssl_mode,
        )

        return create_auth_config_postgres
