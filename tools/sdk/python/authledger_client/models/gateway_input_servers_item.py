from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="GatewayInputServersItem")


@_attrs_define
class GatewayInputServersItem:
    """
    Attributes:
        auth_config_id (str):
        tools (list[str]):
    """

    auth_config_id: str
    tools: list[str]

    def to_dict(self) -> dict[str, Any]:
        auth_config_id = self.auth_config_id

        tools = self.tools

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "auth_config_id": auth_config_id,
                "tools": tools,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        auth_config_id = d.pop("auth_config_id")

        tools = cast(list[str], d.pop("tools"))

        gateway_input_servers_item = cls(
            auth_config_id=auth_config_id,
            tools=tools,
        )

        return gateway_input_servers_item
