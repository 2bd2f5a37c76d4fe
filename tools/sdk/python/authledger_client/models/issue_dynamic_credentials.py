from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="IssueDynamicCredentials")


@_attrs_define
class IssueDynamicCredentials:
    """
    Attributes:
        ttl_seconds (int): At most the auth config's max_ttl_seconds (else 422)
        grants (list[str]): Names of the auth config's grant templates (another name is a 422)
    """

    ttl_seconds: int
    grants: list[str]

    def to_dict(self) -> dict[str, Any]:
        ttl_seconds = self.ttl_seconds

        grants = self.grants

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "ttl_seconds": ttl_seconds,
                "grants": grants,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ttl_seconds = d.pop("ttl_seconds")

        grants = cast(list[str], d.pop("grants"))

        issue_dynamic_credentials = cls(
            ttl_seconds=ttl_seconds,
            grants=grants,
        )

        return issue_dynamic_credentials
