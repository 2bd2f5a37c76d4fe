from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="SecondFactorRequirement")


@_attrs_define
class SecondFactorRequirement:
    """
    Attributes:
        required (bool):
    """

    required: bool

    def to_dict(self) -> dict[str, Any]:
        required = self.required

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "required": required,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        required = d.pop("required")

        second_factor_requirement = cls(
            required=required,
        )

        return second_factor_requirement
