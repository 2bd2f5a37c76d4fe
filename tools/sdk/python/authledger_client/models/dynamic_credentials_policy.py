from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.dynamic_credentials_policy_grants import DynamicCredentialsPolicyGrants


T = TypeVar("T", bound="DynamicCredentialsPolicy")


@_attrs_define
class DynamicCredentialsPolicy:
    """Dynamic database credentials for agents (PostgreSQL and MySQL connectors only): the stored connection credential is
    an administrative one; agents ask POST /v1/connections/{id}/dynamic-credentials for a database user with some of
    these named grants, for at most max_ttl_seconds. On update, left out keeps the policy as it is.

        Attributes:
            max_ttl_seconds (int):
            grants (DynamicCredentialsPolicyGrants): Grant templates by name (1-40 of a-z, 0-9 and _, starting with a
                letter): each a list of rules
    """

    max_ttl_seconds: int
    grants: DynamicCredentialsPolicyGrants

    def to_dict(self) -> dict[str, Any]:
        max_ttl_seconds = self.max_ttl_seconds

        grants = self.grants.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "max_ttl_seconds": max_ttl_seconds,
                "grants": grants,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.dynamic_credentials_policy_grants import DynamicCredentialsPolicyGrants  # noqa: PLC0415

        d = dict(src_dict)
        max_ttl_seconds = d.pop("max_ttl_seconds")

        grants = DynamicCredentialsPolicyGrants.from_dict(d.pop("grants"))

        dynamic_credentials_policy = cls(
            max_ttl_seconds=max_ttl_seconds,
            grants=grants,
        )

        return dynamic_credentials_policy
