from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.signed_event_signatures_item_problem_type_1 import SignedEventSignaturesItemProblemType1
from ..types import UNSET, Unset

T = TypeVar("T", bound="SignedEventSignaturesItem")


@_attrs_define
class SignedEventSignaturesItem:
    """
    Attributes:
        key_id (str | Unset):
        valid (bool | Unset):
        problem (None | SignedEventSignaturesItemProblemType1 | Unset):
    """

    key_id: str | Unset = UNSET
    valid: bool | Unset = UNSET
    problem: None | SignedEventSignaturesItemProblemType1 | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        key_id = self.key_id

        valid = self.valid

        problem: None | str | Unset
        if isinstance(self.problem, Unset):
            problem = UNSET
        elif isinstance(self.problem, SignedEventSignaturesItemProblemType1):
            problem = self.problem.value
        else:
            problem = self.problem

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if key_id is not UNSET:
            field_dict["key_id"] = key_id
        if valid is not UNSET:
            field_dict["valid"] = valid
        if problem is not UNSET:
            field_dict["problem"] = problem

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        key_id = d.pop("key_id", UNSET)

        valid = d.pop("valid", UNSET)

        def _parse_problem(data: object) -> None | SignedEventSignaturesItemProblemType1 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                problem_type_1 = SignedEventSignaturesItemProblemType1(data)

                return problem_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SignedEventSignaturesItemProblemType1 | Unset, data)

        problem = _parse_problem(d.pop("problem", UNSET))

        signed_event_signatures_item = cls(
            key_id=key_id,
            valid=valid,
            problem=problem,
        )

        signed_event_signatures_item.additional_properties = d
        return signed_event_signatures_item

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
