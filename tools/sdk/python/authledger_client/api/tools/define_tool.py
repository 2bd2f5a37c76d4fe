from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.defined_tool import DefinedTool
from ...models.problem import Problem
from ...models.tool_definition import ToolDefinition
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: ToolDefinition,
    idempotency_key: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/tools",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> DefinedTool | Problem | None:
    if response.status_code == 201:
        response_201 = DefinedTool.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = Problem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = Problem.from_dict(response.json())

        return response_403

    if response.status_code == 409:
        response_409 = Problem.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = Problem.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Problem.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = Problem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = Problem.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = Problem.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[DefinedTool | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: ToolDefinition,
    idempotency_key: str | Unset = UNSET,
) -> Response[DefinedTool | Problem]:
    """Define (or redefine) one of the workspace's own tools (tool.defined)

    Args:
        idempotency_key (str | Unset):
        body (ToolDefinition): One tool the gateway can call for an agent: built-in ones live in
            src/gateway/tools/builtin/<provider>.json (an array of these), a workspace adds its own
            through the API. Argument mapping: each {name} placeholder of `path` takes the argument
            `name` (string, or integer), percent-encoded as exactly one path segment (every byte
            outside A-Z a-z 0-9 - . _ ~ is encoded; a segment that would be empty, '.' or '..' is
            refused); the arguments named in `query` go to the query string whatever the method; every
            other argument goes to the query string for GET and DELETE and into a JSON object body
            (content-type: application/json) for POST, PUT and PATCH, which always send a body ({}
            when nothing is left). Query values: strings as they are, numbers and booleans as their
            JSON text, arrays as the key repeated per item, null leaves the parameter out, objects are
            refused. The service validates more than this schema can say (path placeholders must be
            required string/integer properties of `parameters`, `parameters` must compile as JSON
            Schema 2020-12 with local $ref only, ...). (The same schema as schemas/tool-
            definition.schema.json.)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DefinedTool | Problem]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: ToolDefinition,
    idempotency_key: str | Unset = UNSET,
) -> DefinedTool | Problem | None:
    """Define (or redefine) one of the workspace's own tools (tool.defined)

    Args:
        idempotency_key (str | Unset):
        body (ToolDefinition): One tool the gateway can call for an agent: built-in ones live in
            src/gateway/tools/builtin/<provider>.json (an array of these), a workspace adds its own
            through the API. Argument mapping: each {name} placeholder of `path` takes the argument
            `name` (string, or integer), percent-encoded as exactly one path segment (every byte
            outside A-Z a-z 0-9 - . _ ~ is encoded; a segment that would be empty, '.' or '..' is
            refused); the arguments named in `query` go to the query string whatever the method; every
            other argument goes to the query string for GET and DELETE and into a JSON object body
            (content-type: application/json) for POST, PUT and PATCH, which always send a body ({}
            when nothing is left). Query values: strings as they are, numbers and booleans as their
            JSON text, arrays as the key repeated per item, null leaves the parameter out, objects are
            refused. The service validates more than this schema can say (path placeholders must be
            required string/integer properties of `parameters`, `parameters` must compile as JSON
            Schema 2020-12 with local $ref only, ...). (The same schema as schemas/tool-
            definition.schema.json.)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DefinedTool | Problem
    """

    return sync_detailed(
        client=client,
        body=body,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: ToolDefinition,
    idempotency_key: str | Unset = UNSET,
) -> Response[DefinedTool | Problem]:
    """Define (or redefine) one of the workspace's own tools (tool.defined)

    Args:
        idempotency_key (str | Unset):
        body (ToolDefinition): One tool the gateway can call for an agent: built-in ones live in
            src/gateway/tools/builtin/<provider>.json (an array of these), a workspace adds its own
            through the API. Argument mapping: each {name} placeholder of `path` takes the argument
            `name` (string, or integer), percent-encoded as exactly one path segment (every byte
            outside A-Z a-z 0-9 - . _ ~ is encoded; a segment that would be empty, '.' or '..' is
            refused); the arguments named in `query` go to the query string whatever the method; every
            other argument goes to the query string for GET and DELETE and into a JSON object body
            (content-type: application/json) for POST, PUT and PATCH, which always send a body ({}
            when nothing is left). Query values: strings as they are, numbers and booleans as their
            JSON text, arrays as the key repeated per item, null leaves the parameter out, objects are
            refused. The service validates more than this schema can say (path placeholders must be
            required string/integer properties of `parameters`, `parameters` must compile as JSON
            Schema 2020-12 with local $ref only, ...). (The same schema as schemas/tool-
            definition.schema.json.)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DefinedTool | Problem]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: ToolDefinition,
    idempotency_key: str | Unset = UNSET,
) -> DefinedTool | Problem | None:
    """Define (or redefine) one of the workspace's own tools (tool.defined)

    Args:
        idempotency_key (str | Unset):
        body (ToolDefinition): One tool the gateway can call for an agent: built-in ones live in
            src/gateway/tools/builtin/<provider>.json (an array of these), a workspace adds its own
            through the API. Argument mapping: each {name} placeholder of `path` takes the argument
            `name` (string, or integer), percent-encoded as exactly one path segment (every byte
            outside A-Z a-z 0-9 - . _ ~ is encoded; a segment that would be empty, '.' or '..' is
            refused); the arguments named in `query` go to the query string whatever the method; every
            other argument goes to the query string for GET and DELETE and into a JSON object body
            (content-type: application/json) for POST, PUT and PATCH, which always send a body ({}
            when nothing is left). Query values: strings as they are, numbers and booleans as their
            JSON text, arrays as the key repeated per item, null leaves the parameter out, objects are
            refused. The service validates more than this schema can say (path placeholders must be
            required string/integer properties of `parameters`, `parameters` must compile as JSON
            Schema 2020-12 with local $ref only, ...). (The same schema as schemas/tool-
            definition.schema.json.)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DefinedTool | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            idempotency_key=idempotency_key,
        )
    ).parsed
