from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.defined_tool_source import DefinedToolSource

T = TypeVar("T", bound="DefinedTool")


@_attrs_define
class DefinedTool:
    """The definition as stored (every field of a ToolDefinition, schemas/tool-definition.schema.json), plus `source` and
    the tool's `version`

        Attributes:
            name (str):
            provider (str):
            description (str):
            source (DefinedToolSource):
            version (int):
    """

    name: str
    provider: str
    description: str
    source: DefinedToolSource
    version: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        provider = self.provider

        description = self.description

        source = self.source.value

        version = self.version

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "name": name,
                "provider": provider,
                "description": description,
                "source": source,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        provider = d.pop("provider")

        description = d.pop("description")

        source = DefinedToolSource(d.pop("source"))

        version = d.pop("version")

        defined_tool = cls(
            name=name,
            provider=provider,
            description=description,
            source=source,
            version=version,
        )

        defined_tool.additional_properties = d
        return defined_tool

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
