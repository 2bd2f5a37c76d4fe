from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.audit_access_response_200_connections_item import AuditAccessResponse200ConnectionsItem


T = TypeVar("T", bound="AuditAccessResponse200")


@_attrs_define
class AuditAccessResponse200:
    """
    Attributes:
        user_id (str):
        as_of (datetime.datetime):
        connections (list[AuditAccessResponse200ConnectionsItem]):
    """

    user_id: str
    as_of: datetime.datetime
    connections: list[AuditAccessResponse200ConnectionsItem]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        user_id = self.user_id

        as_of = self.as_of.isoformat()

        connections = []
        for connections_item_data in self.connections:
            connections_item = connections_item_data.to_dict()
            connections.append(connections_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "user_id": user_id,
                "as_of": as_of,
                "connections": connections,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.audit_access_response_200_connections_item import AuditAccessResponse200ConnectionsItem  # noqa: PLC0415

        d = dict(src_dict)
        user_id = d.pop("user_id")

        as_of = datetime.datetime.fromisoformat(d.pop("as_of"))

        connections = []
        _connections = d.pop("connections")
        for connections_item_data in _connections:
            connections_item = AuditAccessResponse200ConnectionsItem.from_dict(connections_item_data)

            connections.append(connections_item)

        audit_access_response_200 = cls(
            user_id=user_id,
            as_of=as_of,
            connections=connections,
        )

        audit_access_response_200.additional_properties = d
        return audit_access_response_200

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
