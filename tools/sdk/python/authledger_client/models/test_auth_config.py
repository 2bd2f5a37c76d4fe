from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.connector import Connector
    from ..models.postgres_credentials import PostgresCredentials


T = TypeVar("T", bound="TestAuthConfig")


@_attrs_define
class TestAuthConfig:
    """
    Attributes:
        credentials (Connector | PostgresCredentials | Unset): postgres or connector: the connection's credentials to
            connect with (required)
    """

    credentials: Connector | PostgresCredentials | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.postgres_credentials import PostgresCredentials  # noqa: PLC0415

        credentials: dict[str, Any] | Unset
        if isinstance(self.credentials, Unset):
            credentials = UNSET
        elif isinstance(self.credentials, PostgresCredentials):
            credentials = self.credentials.to_dict()
        else:
            credentials = self.credentials.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if credentials is not UNSET:
            field_dict["credentials"] = credentials

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.connector import Connector  # noqa: PLC0415
        from ..models.postgres_credentials import PostgresCredentials  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_credentials(data: object) -> Connector | PostgresCredentials | Unset:
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                credentials_type_0 = PostgresCredentials.from_dict(data)

                return credentials_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            credentials_type_1 = Connector.from_dict(data)

            return credentials_type_1

        credentials = _parse_credentials(d.pop("credentials", UNSET))

        test_auth_config = cls(
            credentials=credentials,
        )

        return test_auth_config
