from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="McpPersonGatewayMetadataResponse200")


@_attrs_define
class McpPersonGatewayMetadataResponse200:
    """
    Attributes:
        resource (str):
        bearer_methods_supported (list[Literal['header']]):
        authorization_servers (list[str] | Unset):
        scopes_supported (list[str] | Unset):
        resource_name (str | Unset):
    """

    resource: str
    bearer_methods_supported: list[Literal["header"]]
    authorization_servers: list[str] | Unset = UNSET
    scopes_supported: list[str] | Unset = UNSET
    resource_name: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        resource = self.resource

        bearer_methods_supported = self.bearer_methods_supported

        authorization_servers: list[str] | Unset = UNSET
        if not isinstance(self.authorization_servers, Unset):
            authorization_servers = self.authorization_servers

        scopes_supported: list[str] | Unset = UNSET
        if not isinstance(self.scopes_supported, Unset):
            scopes_supported = self.scopes_supported

        resource_name = self.resource_name

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "resource": resource,
                "bearer_methods_supported": bearer_methods_supported,
            }
        )
        if authorization_servers is not UNSET:
            field_dict["authorization_servers"] = authorization_servers
        if scopes_supported is not UNSET:
            field_dict["scopes_supported"] = scopes_supported
        if resource_name is not UNSET:
            field_dict["resource_name"] = resource_name

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        resource = d.pop("resource")

        bearer_methods_supported = []
        _bearer_methods_supported = d.pop("bearer_methods_supported")
        for bearer_methods_supported_item_data in _bearer_methods_supported:
            bearer_methods_supported_item = cast(Literal["header"], bearer_methods_supported_item_data)
            if bearer_methods_supported_item != "header":
                raise ValueError(
                    f"bearer_methods_supported_item must match const 'header', got '{bearer_methods_supported_item}'"
                )
            bearer_methods_supported.append(bearer_methods_supported_item)

        authorization_servers = cast(list[str], d.pop("authorization_servers", UNSET))

        scopes_supported = cast(list[str], d.pop("scopes_supported", UNSET))

        resource_name = d.pop("resource_name", UNSET)

        mcp_person_gateway_metadata_response_200 = cls(
            resource=resource,
            bearer_methods_supported=bearer_methods_supported,
            authorization_servers=authorization_servers,
            scopes_supported=scopes_supported,
            resource_name=resource_name,
        )

        mcp_person_gateway_metadata_response_200.additional_properties = d
        return mcp_person_gateway_metadata_response_200

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
