from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.tool_definition_parameters_properties import ToolDefinitionParametersProperties


T = TypeVar("T", bound="ToolDefinitionParameters")


@_attrs_define
class ToolDefinitionParameters:
    """JSON Schema (2020-12) of the arguments object, shown to the model: give every property a description.

    Attributes:
        type_ (Literal['object']):
        schema (Literal['https://json-schema.org/draft/2020-12/schema'] | Unset):
        properties (ToolDefinitionParametersProperties | Unset):
        required (list[str] | Unset):
    """

    type_: Literal["object"]
    schema: Literal["https://json-schema.org/draft/2020-12/schema"] | Unset = UNSET
    properties: ToolDefinitionParametersProperties | Unset = UNSET
    required: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_

        schema = self.schema

        properties: dict[str, Any] | Unset = UNSET
        if not isinstance(self.properties, Unset):
            properties = self.properties.to_dict()

        required: list[str] | Unset = UNSET
        if not isinstance(self.required, Unset):
            required = self.required

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "type": type_,
            }
        )
        if schema is not UNSET:
            field_dict["$schema"] = schema
        if properties is not UNSET:
            field_dict["properties"] = properties
        if required is not UNSET:
            field_dict["required"] = required

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.tool_definition_parameters_properties import ToolDefinitionParametersProperties  # noqa: PLC0415

        d = dict(src_dict)
        type_ = cast(Literal["object"], d.pop("type"))
        if type_ != "object":
            raise ValueError(f"type must match const 'object', got '{type_}'")

        schema = cast(Literal["https://json-schema.org/draft/2020-12/schema"] | Unset, d.pop("$schema", UNSET))
        if schema != "https://json-schema.org/draft/2020-12/schema" and not isinstance(schema, Unset):
            raise ValueError(f"$schema must match const 'https://json-schema.org/draft/2020-12/schema', got '{schema}'")

        _properties = d.pop("properties", UNSET)
        properties: ToolDefinitionParametersProperties | Unset
        if isinstance(_properties, Unset):
            properties = UNSET
        else:
            properties = ToolDefinitionParametersProperties.from_dict(_properties)

        required = cast(list[str], d.pop("required", UNSET))

        tool_definition_parameters = cls(
            type_=type_,
            schema=schema,
            properties=properties,
            required=required,
        )

        tool_definition_parameters.additional_properties = d
        return tool_definition_parameters

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
