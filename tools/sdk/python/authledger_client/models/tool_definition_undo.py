from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.tool_definition_undo_method import ToolDefinitionUndoMethod
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.tool_definition_undo_body import ToolDefinitionUndoBody


T = TypeVar("T", bound="ToolDefinitionUndo")


@_attrs_define
class ToolDefinitionUndo:
    """How a successful call is undone (POST /v1/tool-calls/{id}/undo): a compensating request to the tool's base_url with
    its static headers. `path` is a template: {name} takes the call's argument `name`, {response.a.b} the value at a.b
    of the upstream's JSON answer (a numeric step indexes an array), each as one percent-encoded segment (string or
    integer). `body` (POST, PUT, PATCH only; {} when absent) is JSON in which a string that is exactly one placeholder
    is replaced by that value, whatever its type. No query string. Placeholders may not name secret-looking fields. The
    compensating request is fixed when the call completes (recorded in tool.completed, without the credential, injected
    when sent).

        Attributes:
            method (ToolDefinitionUndoMethod):
            path (str):
            body (ToolDefinitionUndoBody | Unset):
            window_seconds (int | Unset): How long after the call it may be undone; default 86400 (24 h).
    """

    method: ToolDefinitionUndoMethod
    path: str
    body: ToolDefinitionUndoBody | Unset = UNSET
    window_seconds: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        method = self.method.value

        path = self.path

        body: dict[str, Any] | Unset = UNSET
        if not isinstance(self.body, Unset):
            body = self.body.to_dict()

        window_seconds = self.window_seconds

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "method": method,
                "path": path,
            }
        )
        if body is not UNSET:
            field_dict["body"] = body
        if window_seconds is not UNSET:
            field_dict["window_seconds"] = window_seconds

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.tool_definition_undo_body import ToolDefinitionUndoBody  # noqa: PLC0415

        d = dict(src_dict)
        method = ToolDefinitionUndoMethod(d.pop("method"))

        path = d.pop("path")

        _body = d.pop("body", UNSET)
        body: ToolDefinitionUndoBody | Unset
        if isinstance(_body, Unset):
            body = UNSET
        else:
            body = ToolDefinitionUndoBody.from_dict(_body)

        window_seconds = d.pop("window_seconds", UNSET)

        tool_definition_undo = cls(
            method=method,
            path=path,
            body=body,
            window_seconds=window_seconds,
        )

        return tool_definition_undo
