from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.tool_definition_method import ToolDefinitionMethod
from ..models.tool_definition_risk import ToolDefinitionRisk
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.tool_definition_headers import ToolDefinitionHeaders
    from ..models.tool_definition_parameters import ToolDefinitionParameters
    from ..models.tool_definition_undo import ToolDefinitionUndo


T = TypeVar("T", bound="ToolDefinition")


@_attrs_define
class ToolDefinition:
    """One tool the gateway can call for an agent: built-in ones live in src/gateway/tools/builtin/<provider>.json (an
    array of these), a workspace adds its own through the API. Argument mapping: each {name} placeholder of `path` takes
    the argument `name` (string, or integer), percent-encoded as exactly one path segment (every byte outside A-Z a-z
    0-9 - . _ ~ is encoded; a segment that would be empty, '.' or '..' is refused); the arguments named in `query` go to
    the query string whatever the method; every other argument goes to the query string for GET and DELETE and into a
    JSON object body (content-type: application/json) for POST, PUT and PATCH, which always send a body ({} when nothing
    is left). Query values: strings as they are, numbers and booleans as their JSON text, arrays as the key repeated per
    item, null leaves the parameter out, objects are refused. The service validates more than this schema can say (path
    placeholders must be required string/integer properties of `parameters`, `parameters` must compile as JSON Schema
    2020-12 with local $ref only, ...). (The same schema as schemas/tool-definition.schema.json.)

        Attributes:
            name (str): <namespace>.<action>, for example gmail.send_message.
            provider (str): A provider id of the catalog (src/providers/catalog/), or any id for a workspace tool.
            description (str): What the tool does, as the model choosing a tool reads it.
            method (ToolDefinitionMethod):
            base_url (str): Scheme, host and optional port only: https, or http to a loopback host (tests).
            path (str): Absolute path template; {param} placeholders are filled from the arguments.
            parameters (ToolDefinitionParameters): JSON Schema (2020-12) of the arguments object, shown to the model: give
                every property a description.
            risk (ToolDefinitionRisk): read: no change upstream; write: a change that can be undone or is expected;
                destructive: loses data for good.
            query (list[str] | Unset): Argument names sent in the query string even on POST, PUT and PATCH.
            headers (ToolDefinitionHeaders | Unset): Static request headers (for example Notion-Version). Never credentials:
                those are injected from the connection.
            required_scopes (list[str] | Unset): OAuth scopes the connection must have been granted, all of them.
            undo (ToolDefinitionUndo | Unset): How a successful call is undone (POST /v1/tool-calls/{id}/undo): a
                compensating request to the tool's base_url with its static headers. `path` is a template: {name} takes the
                call's argument `name`, {response.a.b} the value at a.b of the upstream's JSON answer (a numeric step indexes an
                array), each as one percent-encoded segment (string or integer). `body` (POST, PUT, PATCH only; {} when absent)
                is JSON in which a string that is exactly one placeholder is replaced by that value, whatever its type. No query
                string. Placeholders may not name secret-looking fields. The compensating request is fixed when the call
                completes (recorded in tool.completed, without the credential, injected when sent).
    """

    name: str
    provider: str
    description: str
    method: ToolDefinitionMethod
    base_url: str
    path: str
    parameters: ToolDefinitionParameters
    risk: ToolDefinitionRisk
    query: list[str] | Unset = UNSET
    headers: ToolDefinitionHeaders | Unset = UNSET
    required_scopes: list[str] | Unset = UNSET
    undo: ToolDefinitionUndo | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        provider = self.provider

        description = self.description

        method = self.method.value

        base_url = self.base_url

        path = self.path

        parameters = self.parameters.to_dict()

        risk = self.risk.value

        query: list[str] | Unset = UNSET
        if not isinstance(self.query, Unset):
            query = self.query

        headers: dict[str, Any] | Unset = UNSET
        if not isinstance(self.headers, Unset):
            headers = self.headers.to_dict()

        required_scopes: list[str] | Unset = UNSET
        if not isinstance(self.required_scopes, Unset):
            required_scopes = self.required_scopes

        undo: dict[str, Any] | Unset = UNSET
        if not isinstance(self.undo, Unset):
            undo = self.undo.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "provider": provider,
                "description": description,
                "method": method,
                "base_url": base_url,
                "path": path,
                "parameters": parameters,
                "risk": risk,
            }
        )
        if query is not UNSET:
            field_dict["query"] = query
        if headers is not UNSET:
            field_dict["headers"] = headers
        if required_scopes is not UNSET:
            field_dict["required_scopes"] = required_scopes
        if undo is not UNSET:
            field_dict["undo"] = undo

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.tool_definition_headers import ToolDefinitionHeaders  # noqa: PLC0415
        from ..models.tool_definition_parameters import ToolDefinitionParameters  # noqa: PLC0415
        from ..models.tool_definition_undo import ToolDefinitionUndo  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        provider = d.pop("provider")

        description = d.pop("description")

        method = ToolDefinitionMethod(d.pop("method"))

        base_url = d.pop("base_url")

        path = d.pop("path")

        parameters = ToolDefinitionParameters.from_dict(d.pop("parameters"))

        risk = ToolDefinitionRisk(d.pop("risk"))

        query = cast(list[str], d.pop("query", UNSET))

        _headers = d.pop("headers", UNSET)
        headers: ToolDefinitionHeaders | Unset
        if isinstance(_headers, Unset):
            headers = UNSET
        else:
            headers = ToolDefinitionHeaders.from_dict(_headers)

        required_scopes = cast(list[str], d.pop("required_scopes", UNSET))

        _undo = d.pop("undo", UNSET)
        undo: ToolDefinitionUndo | Unset
        if isinstance(_undo, Unset):
            undo = UNSET
        else:
            undo = ToolDefinitionUndo.from_dict(_undo)

        tool_definition = cls(
            name=name,
            provider=provider,
            description=description,
            method=method,
            base_url=base_url,
            path=path,
            parameters=parameters,
            risk=risk,
            query=query,
            headers=headers,
            required_scopes=required_scopes,
            undo=undo,
        )

        return tool_definition
