from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.problem_errors_item import ProblemErrorsItem


T = TypeVar("T", bound="DeleteAuthConfigResponse409")


@_attrs_define
class DeleteAuthConfigResponse409:
    """
    Attributes:
        type_ (str):
        title (str):
        status (int):
        detail (str | Unset):
        errors (list[ProblemErrorsItem] | Unset): validation-failed and malformed-json: each failing member of the
            request body, named by a JSON pointer (RFC 6901) into the body ("" for the whole body)
        dependants (list[str] | Unset): Ids of the live connections (has-dependants only)
    """

    type_: str
    title: str
    status: int
    detail: str | Unset = UNSET
    errors: list[ProblemErrorsItem] | Unset = UNSET
    dependants: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_

        title = self.title

        status = self.status

        detail = self.detail

        errors: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.errors, Unset):
            errors = []
            for errors_item_data in self.errors:
                errors_item = errors_item_data.to_dict()
                errors.append(errors_item)

        dependants: list[str] | Unset = UNSET
        if not isinstance(self.dependants, Unset):
            dependants = self.dependants

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "type": type_,
                "title": title,
                "status": status,
            }
        )
        if detail is not UNSET:
            field_dict["detail"] = detail
        if errors is not UNSET:
            field_dict["errors"] = errors
        if dependants is not UNSET:
            field_dict["dependants"] = dependants

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.problem_errors_item import ProblemErrorsItem  # noqa: PLC0415

        d = dict(src_dict)
        type_ = d.pop("type")

        title = d.pop("title")

        status = d.pop("status")

        detail = d.pop("detail", UNSET)

        _errors = d.pop("errors", UNSET)
        errors: list[ProblemErrorsItem] | Unset = UNSET
        if _errors is not UNSET:
            errors = []
            for errors_item_data in _errors:
                errors_item = ProblemErrorsItem.from_dict(errors_item_data)

                errors.append(errors_item)

        dependants = cast(list[str], d.pop("dependants", UNSET))

        delete_auth_config_response_409 = cls(
            type_=type_,
            title=title,
            status=status,
            detail=detail,
            errors=errors,
            dependants=dependants,
        )

        delete_auth_config_response_409.additional_properties = d
        return delete_auth_config_response_409

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
