from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.grant_rule_privileges_item import GrantRulePrivilegesItem
from ..types import UNSET, Unset

T = TypeVar("T", bound="GrantRule")


@_attrs_define
class GrantRule:
    """Privileges on every table of a schema, or on the tables named. PostgreSQL: schema defaults to public; MySQL: schema
    is the database, defaulting to the connector's.

        Attributes:
            privileges (list[GrantRulePrivilegesItem]):
            schema (str | Unset):
            tables (list[str] | Unset):
    """

    privileges: list[GrantRulePrivilegesItem]
    schema: str | Unset = UNSET
    tables: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        privileges = []
        for privileges_item_data in self.privileges:
            privileges_item = privileges_item_data.value
            privileges.append(privileges_item)

        schema = self.schema

        tables: list[str] | Unset = UNSET
        if not isinstance(self.tables, Unset):
            tables = self.tables

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "privileges": privileges,
            }
        )
        if schema is not UNSET:
            field_dict["schema"] = schema
        if tables is not UNSET:
            field_dict["tables"] = tables

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        privileges = []
        _privileges = d.pop("privileges")
        for privileges_item_data in _privileges:
            privileges_item = GrantRulePrivilegesItem(privileges_item_data)

            privileges.append(privileges_item)

        schema = d.pop("schema", UNSET)

        tables = cast(list[str], d.pop("tables", UNSET))

        grant_rule = cls(
            privileges=privileges,
            schema=schema,
            tables=tables,
        )

        return grant_rule
