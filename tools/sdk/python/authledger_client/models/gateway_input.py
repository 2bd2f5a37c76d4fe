from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.gateway_input_servers_item import GatewayInputServersItem


T = TypeVar("T", bound="GatewayInput")


@_attrs_define
class GatewayInput:
    """
    Attributes:
        name (str):
        servers (list[GatewayInputServersItem]):
        agent_key_ids (list[str] | Unset): API keys bound to this gateway: they may use only what their gateways allow
    """

    name: str
    servers: list[GatewayInputServersItem]
    agent_key_ids: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        servers = []
        for servers_item_data in self.servers:
            servers_item = servers_item_data.to_dict()
            servers.append(servers_item)

        agent_key_ids: list[str] | Unset = UNSET
        if not isinstance(self.agent_key_ids, Unset):
            agent_key_ids = self.agent_key_ids

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "servers": servers,
            }
        )
        if agent_key_ids is not UNSET:
            field_dict["agent_key_ids"] = agent_key_ids

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.gateway_input_servers_item import GatewayInputServersItem  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        servers = []
        _servers = d.pop("servers")
        for servers_item_data in _servers:
            servers_item = GatewayInputServersItem.from_dict(servers_item_data)

            servers.append(servers_item)

        agent_key_ids = cast(list[str], d.pop("agent_key_ids", UNSET))

        gateway_input = cls(
            name=name,
            servers=servers,
            agent_key_ids=agent_key_ids,
        )

        return gateway_input
