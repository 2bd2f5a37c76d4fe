from http import HTTPStatus
from typing import Any, cast

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.mcp_body import McpBody
from ...models.mcp_response_200 import McpResponse200
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: McpBody,
    mcp_session_id: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(mcp_session_id, Unset):
        headers["Mcp-Session-Id"] = mcp_session_id

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/mcp",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | McpResponse200 | Problem | None:
    if response.status_code == 200:
        response_200 = McpResponse200.from_dict(response.json())

        return response_200

    if response.status_code == 202:
        response_202 = cast(Any, None)
        return response_202

    if response.status_code == 400:
        response_400 = cast(Any, None)
        return response_400

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = Problem.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

    if response.status_code == 406:
        response_406 = cast(Any, None)
        return response_406

    if response.status_code == 413:
        response_413 = cast(Any, None)
        return response_413

    if response.status_code == 415:
        response_415 = cast(Any, None)
        return response_415

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
) -> Response[Any | McpResponse200 | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: McpBody,
    mcp_session_id: str | Unset = UNSET,
) -> Response[Any | McpResponse200 | Problem]:
    """MCP server (Model Context Protocol, Streamable HTTP transport): initialize, tools/list, tools/call
    over the tool gateway

     One JSON-RPC message per POST (`Accept: application/json, text/event-stream`, `Content-Type:
    application/json`); answers are JSON-RPC in `application/json`. An `initialize` answered with a
    result opens a session: the answer carries `Mcp-Session-Id`, kept in the log for 24 hours (any
    instance knows it); later messages may present it. Within a session a `tools/call` retried with the
    same JSON-RPC id runs once and answers the first call's result; another call with the id, or a retry
    while the first still runs, is a JSON-RPC error (-32600) whose data is the problem (`mcp-request-id-
    reused`; `idempotency-key-in-use` with `retry_after` seconds). An unknown or ended session, or
    another caller's, answers 404 `mcp-session-not-found` (initialize again). GET and DELETE are not
    served. Authenticated like `POST /v1/tools/execute`: an API key (admin, developer, agent) or a
    scoped token as the bearer. `tools/list` lists the tools the caller may use (a scoped token: those
    it covers). `tools/call` runs the tool through the gateway (same checks and events as `POST
    /v1/tools/execute`); its `arguments` hold the tool's own arguments plus the routing fields
    `connection_id`, or `user_id` and `auth_config_id`, and `approval_id` (destructive tools). A refusal
    is a tool result with `isError: true` whose text is the problem JSON (e.g. `approval-required` with
    `approval_id`, `connection-required` with `connect_url`). The `Host` must be the public URL's host
    or a loopback name, and a request with an `Origin` must come from the public URL's origin (403
    otherwise).

    Args:
        mcp_session_id (str | Unset):
        body (McpBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | McpResponse200 | Problem]
    """

    kwargs = _get_kwargs(
        body=body,
        mcp_session_id=mcp_session_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: McpBody,
    mcp_session_id: str | Unset = UNSET,
) -> Any | McpResponse200 | Problem | None:
    """MCP server (Model Context Protocol, Streamable HTTP transport): initialize, tools/list, tools/call
    over the tool gateway

     One JSON-RPC message per POST (`Accept: application/json, text/event-stream`, `Content-Type:
    application/json`); answers are JSON-RPC in `application/json`. An `initialize` answered with a
    result opens a session: the answer carries `Mcp-Session-Id`, kept in the log for 24 hours (any
    instance knows it); later messages may present it. Within a session a `tools/call` retried with the
    same JSON-RPC id runs once and answers the first call's result; another call with the id, or a retry
    while the first still runs, is a JSON-RPC error (-32600) whose data is the problem (`mcp-request-id-
    reused`; `idempotency-key-in-use` with `retry_after` seconds). An unknown or ended session, or
    another caller's, answers 404 `mcp-session-not-found` (initialize again). GET and DELETE are not
    served. Authenticated like `POST /v1/tools/execute`: an API key (admin, developer, agent) or a
    scoped token as the bearer. `tools/list` lists the tools the caller may use (a scoped token: those
    it covers). `tools/call` runs the tool through the gateway (same checks and events as `POST
    /v1/tools/execute`); its `arguments` hold the tool's own arguments plus the routing fields
    `connection_id`, or `user_id` and `auth_config_id`, and `approval_id` (destructive tools). A refusal
    is a tool result with `isError: true` whose text is the problem JSON (e.g. `approval-required` with
    `approval_id`, `connection-required` with `connect_url`). The `Host` must be the public URL's host
    or a loopback name, and a request with an `Origin` must come from the public URL's origin (403
    otherwise).

    Args:
        mcp_session_id (str | Unset):
        body (McpBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | McpResponse200 | Problem
    """

    return sync_detailed(
        client=client,
        body=body,
        mcp_session_id=mcp_session_id,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: McpBody,
    mcp_session_id: str | Unset = UNSET,
) -> Response[Any | McpResponse200 | Problem]:
    """MCP server (Model Context Protocol, Streamable HTTP transport): initialize, tools/list, tools/call
    over the tool gateway

     One JSON-RPC message per POST (`Accept: application/json, text/event-stream`, `Content-Type:
    application/json`); answers are JSON-RPC in `application/json`. An `initialize` answered with a
    result opens a session: the answer carries `Mcp-Session-Id`, kept in the log for 24 hours (any
    instance knows it); later messages may present it. Within a session a `tools/call` retried with the
    same JSON-RPC id runs once and answers the first call's result; another call with the id, or a retry
    while the first still runs, is a JSON-RPC error (-32600) whose data is the problem (`mcp-request-id-
    reused`; `idempotency-key-in-use` with `retry_after` seconds). An unknown or ended session, or
    another caller's, answers 404 `mcp-session-not-found` (initialize again). GET and DELETE are not
    served. Authenticated like `POST /v1/tools/execute`: an API key (admin, developer, agent) or a
    scoped token as the bearer. `tools/list` lists the tools the caller may use (a scoped token: those
    it covers). `tools/call` runs the tool through the gateway (same checks and events as `POST
    /v1/tools/execute`); its `arguments` hold the tool's own arguments plus the routing fields
    `connection_id`, or `user_id` and `auth_config_id`, and `approval_id` (destructive tools). A refusal
    is a tool result with `isError: true` whose text is the problem JSON (e.g. `approval-required` with
    `approval_id`, `connection-required` with `connect_url`). The `Host` must be the public URL's host
    or a loopback name, and a request with an `Origin` must come from the public URL's origin (403
    otherwise).

    Args:
        mcp_session_id (str | Unset):
        body (McpBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | McpResponse200 | Problem]
    """

    kwargs = _get_kwargs(
        body=body,
        mcp_session_id=mcp_session_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: McpBody,
    mcp_session_id: str | Unset = UNSET,
) -> Any | McpResponse200 | Problem | None:
    """MCP server (Model Context Protocol, Streamable HTTP transport): initialize, tools/list, tools/call
    over the tool gateway

     One JSON-RPC message per POST (`Accept: application/json, text/event-stream`, `Content-Type:
    application/json`); answers are JSON-RPC in `application/json`. An `initialize` answered with a
    result opens a session: the answer carries `Mcp-Session-Id`, kept in the log for 24 hours (any
    instance knows it); later messages may present it. Within a session a `tools/call` retried with the
    same JSON-RPC id runs once and answers the first call's result; another call with the id, or a retry
    while the first still runs, is a JSON-RPC error (-32600) whose data is the problem (`mcp-request-id-
    reused`; `idempotency-key-in-use` with `retry_after` seconds). An unknown or ended session, or
    another caller's, answers 404 `mcp-session-not-found` (initialize again). GET and DELETE are not
    served. Authenticated like `POST /v1/tools/execute`: an API key (admin, developer, agent) or a
    scoped token as the bearer. `tools/list` lists the tools the caller may use (a scoped token: those
    it covers). `tools/call` runs the tool through the gateway (same checks and events as `POST
    /v1/tools/execute`); its `arguments` hold the tool's own arguments plus the routing fields
    `connection_id`, or `user_id` and `auth_config_id`, and `approval_id` (destructive tools). A refusal
    is a tool result with `isError: true` whose text is the problem JSON (e.g. `approval-required` with
    `approval_id`, `connection-required` with `connect_url`). The `Host` must be the public URL's host
    or a loopback name, and a request with an `Origin` must come from the public URL's origin (403
    otherwise).

    Args:
        mcp_session_id (str | Unset):
        body (McpBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | McpResponse200 | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            mcp_session_id=mcp_session_id,
        )
    ).parsed
