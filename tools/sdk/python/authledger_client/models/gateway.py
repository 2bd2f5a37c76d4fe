from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.gateway_status import GatewayStatus
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.gateway_servers_item import GatewayServersItem


T = TypeVar("T", bound="Gateway")


@_attrs_define
class Gateway:
    """
    Attributes:
        id (str | Unset):
        name (str | Unset):
        servers (list[GatewayServersItem] | Unset):
        agent_key_ids (list[str] | Unset):
        status (GatewayStatus | Unset):
        mcp_path (str | Unset):
        version (int | Unset):
        created_at (str | Unset):
        updated_at (str | Unset):
    """

    id: str | Unset = UNSET
    name: str | Unset = UNSET
    servers: list[GatewayServersItem] | Unset = UNSET
    agent_key_ids: list[str] | Unset = UNSET
    status: GatewayStatus | Unset = UNSET
    mcp_path: str | Unset = UNSET
    version: int | Unset = UNSET
    created_at: str | Unset = UNSET
    updated_at: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name = self.name

        servers: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.servers, Unset):
            servers = []
            for servers_item_data in self.servers:
                servers_item = servers_item_data.to_dict()
                servers.append(servers_item)

        agent_key_ids: list[str] | Unset = UNSET
        if not isinstance(self.agent_key_ids, Unset):
            agent_key_ids = self.agent_key_ids

        status: str | Unset = UNSET
        if not isinstance(self.status, Unset):
            status = self.status.value

        mcp_path = self.mcp_path

        version = self.version

        created_at = self.created_at

        updated_at = self.updated_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if name is not UNSET:
            field_dict["name"] = name
        if servers is not UNSET:
            field_dict["servers"] = servers
        if agent_key_ids is not UNSET:
            field_dict["agent_key_ids"] = agent_key_ids
        if status is not UNSET:
            field_dict["status"] = status
        if mcp_path is not UNSET:
            field_dict["mcp_path"] = mcp_path
        if version is not UNSET:
            field_dict["version"] = version
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if updated_at is not UNSET:
            field_dict["updated_at"] = updated_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.gateway_servers_item import GatewayServersItem  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id", UNSET)

        name = d.pop("name", UNSET)

        _servers = d.pop("servers", UNSET)
        servers: list[GatewayServersItem] | Unset = UNSET
        if _servers is not UNSET:
            servers = []
            for servers_item_data in _servers:
                servers_item = GatewayServersItem.from_dict(servers_item_data)

                servers.append(servers_item)

        agent_key_ids = cast(list[str], d.pop("agent_key_ids", UNSET))

        _status = d.pop("status", UNSET)
        status: GatewayStatus | Unset
        if isinstance(_status, Unset):
            status = UNSET
        else:
            status = GatewayStatus(_status)

        mcp_path = d.pop("mcp_path", UNSET)

        version = d.pop("version", UNSET)

        created_at = d.pop("created_at", UNSET)

        updated_at = d.pop("updated_at", UNSET)

        gateway = cls(
            id=id,
            name=name,
            servers=servers,
            agent_key_ids=agent_key_ids,
            status=status,
            mcp_path=mcp_path,
            version=version,
            created_at=created_at,
            updated_at=updated_at,
        )

        gateway.additional_properties = d
        return gateway

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
