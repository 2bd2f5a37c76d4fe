from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.tool_response_storage import ToolResponseStorage
from ...types import Response


def _get_kwargs(
    *,
    body: ToolResponseStorage,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/v1/workspace/tool-response-storage",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | ToolResponseStorage | None:
    if response.status_code == 200:
        response_200 = ToolResponseStorage.from_dict(response.json())

        return response_200

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
) -> Response[Problem | ToolResponseStorage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: ToolResponseStorage,
) -> Response[Problem | ToolResponseStorage]:
    """Opt in (or out) of keeping upstream response bodies, redacted (secret-looking fields replaced, long
    strings cut, bodies over 64 KiB only as their size), in tool.completed events
    (workspace.tool_response_storage_set). Off by default (a setting already in force is answered 200
    and writes nothing)

    Args:
        body (ToolResponseStorage):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ToolResponseStorage]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: ToolResponseStorage,
) -> Problem | ToolResponseStorage | None:
    """Opt in (or out) of keeping upstream response bodies, redacted (secret-looking fields replaced, long
    strings cut, bodies over 64 KiB only as their size), in tool.completed events
    (workspace.tool_response_storage_set). Off by default (a setting already in force is answered 200
    and writes nothing)

    Args:
        body (ToolResponseStorage):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ToolResponseStorage
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: ToolResponseStorage,
) -> Response[Problem | ToolResponseStorage]:
    """Opt in (or out) of keeping upstream response bodies, redacted (secret-looking fields replaced, long
    strings cut, bodies over 64 KiB only as their size), in tool.completed events
    (workspace.tool_response_storage_set). Off by default (a setting already in force is answered 200
    and writes nothing)

    Args:
        body (ToolResponseStorage):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ToolResponseStorage]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: ToolResponseStorage,
) -> Problem | ToolResponseStorage | None:
    """Opt in (or out) of keeping upstream response bodies, redacted (secret-looking fields replaced, long
    strings cut, bodies over 64 KiB only as their size), in tool.completed events
    (workspace.tool_response_storage_set). Off by default (a setting already in force is answered 200
    and writes nothing)

    Args:
        body (ToolResponseStorage):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ToolResponseStorage
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
