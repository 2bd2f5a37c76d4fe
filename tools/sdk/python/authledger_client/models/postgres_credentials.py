from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="PostgresCredentials")


@_attrs_define
class PostgresCredentials:
    """For a postgres auth config: tested (connect and `SELECT 1`) before it is accepted

    Attributes:
        user (str):
        password (str):
    """

    user: str
    password: str

    def to_dict(self) -> dict[str, Any]:
        user = self.user

        password = self.password

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "user": user,
                "password": password,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        user = d.pop("user")

        password = d.pop("password")

        postgres_credentials = cls(
            user=user,
            password=password,
        )

        return postgres_credentials
