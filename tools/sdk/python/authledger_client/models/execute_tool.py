from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.execute_tool_arguments import ExecuteToolArguments


T = TypeVar("T", bound="ExecuteTool")


@_attrs_define
class ExecuteTool:
    """
    Attributes:
        tool (str):
        arguments (ExecuteToolArguments | Unset):
        connection_id (str | Unset):
        user_id (str | Unset):
        auth_config_id (str | Unset):
        approval_id (str | Unset): For destructive tools: the approved step-up request of exactly this call
    """

    tool: str
    arguments: ExecuteToolArguments | Unset = UNSET
    connection_id: str | Unset = UNSET
    user_id: str | Unset = UNSET
    auth_config_id: str | Unset = UNSET
    approval_id: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        tool = self.tool

        arguments: dict[str, Any] | Unset = UNSET
        if not isinstance(self.arguments, Unset):
            arguments = self.arguments.to_dict()

        connection_id = self.connection_id

        user_id = self.user_id

        auth_config_id = self.auth_config_id

        approval_id = self.approval_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "tool": tool,
            }
        )
        if arguments is not UNSET:
            field_dict["arguments"] = arguments
        if connection_id is not UNSET:
            field_dict["connection_id"] = connection_id
        if user_id is not UNSET:
            field_dict["user_id"] = user_id
        if auth_config_id is not UNSET:
            field_dict["auth_config_id"] = auth_config_id
        if approval_id is not UNSET:
            field_dict["approval_id"] = approval_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.execute_tool_arguments import ExecuteToolArguments  # noqa: PLC0415

        d = dict(src_dict)
        tool = d.pop("tool")

        _arguments = d.pop("arguments", UNSET)
        arguments: ExecuteToolArguments | Unset
        if isinstance(_arguments, Unset):
            arguments = UNSET
        else:
            arguments = ExecuteToolArguments.from_dict(_arguments)

        connection_id = d.pop("connection_id", UNSET)

        user_id = d.pop("user_id", UNSET)

        auth_config_id = d.pop("auth_config_id", UNSET)

        approval_id = d.pop("approval_id", UNSET)

        execute_tool = cls(
            tool=tool,
            arguments=arguments,
            connection_id=connection_id,
            user_id=user_id,
            auth_config_id=auth_config_id,
            approval_id=approval_id,
        )

        return execute_tool
