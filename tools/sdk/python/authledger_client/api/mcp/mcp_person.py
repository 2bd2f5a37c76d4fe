from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.mcp_person_body import McpPersonBody
from ...models.mcp_person_response_200 import McpPersonResponse200
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    workspace_id: str,
    *,
    body: McpPersonBody,
    mcp_session_id: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(mcp_session_id, Unset):
        headers["Mcp-Session-Id"] = mcp_session_id

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/mcp/w/{workspace_id}".format(
            workspace_id=quote(str(workspace_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | McpPersonResponse200 | Problem | None:
    if response.status_code == 200:
        response_200 = McpPersonResponse200.from_dict(response.json())

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
        response_403 = cast(Any, None)
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
) -> Response[Any | McpPersonResponse200 | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    workspace_id: str,
    *,
    client: AuthenticatedClient,
    body: McpPersonBody,
    mcp_session_id: str | Unset = UNSET,
) -> Response[Any | McpPersonResponse200 | Problem]:
    """MCP as the signed-in person of a workspace: the tools of their own connections

     The MCP server acting as the signed-in person: the bearer is the person's access token from the
    workspace's identity provider (a JWT checked like the end-user routes': JWKS, `iss`, `aud`, `exp`,
    RS256/ES256/EdDSA), obtained by the MCP authorization flow (401 → protected resource metadata → the
    provider). Stateless Streamable HTTP as `POST /mcp` (one JSON-RPC message per POST, JSON answers, no
    `Mcp-Session-Id`). `tools/list` lists the tools of the person's own active connections; `tools/call`
    acts only through the person's own connections: routing fields `connection_id` or `auth_config_id`
    (or neither, when one of their connections serves the tool), and `approval_id` (destructive tools).
    Another person's connection answers exactly like an unknown id (a tool error with the `not-found`
    problem) and is recorded as `access.denied` (`other_user`). Calls are recorded with the person
    (actor `user`) and the MCP client (`mcp_client` on `tool.requested`, from the token's `azp` or
    `client_id`). An `initialize` answered with a result opens a session: the answer carries `Mcp-
    Session-Id`, kept in the log for 24 hours (any instance knows it); later messages may present it.
    Within a session a `tools/call` retried with the same JSON-RPC id runs once and answers the first
    call's result; another call with the id, or a retry while the first still runs, is a JSON-RPC error
    (-32600) whose data is the problem (`mcp-request-id-reused`; `idempotency-key-in-use` with
    `retry_after` seconds). An unknown or ended session, or another caller's, answers 404 `mcp-session-
    not-found` (initialize again). GET and DELETE are not served.

    Args:
        workspace_id (str):
        mcp_session_id (str | Unset):
        body (McpPersonBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | McpPersonResponse200 | Problem]
    """

    kwargs = _get_kwargs(
        workspace_id=workspace_id,
        body=body,
        mcp_session_id=mcp_session_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    workspace_id: str,
    *,
    client: AuthenticatedClient,
    body: McpPersonBody,
    mcp_session_id: str | Unset = UNSET,
) -> Any | McpPersonResponse200 | Problem | None:
    """MCP as the signed-in person of a workspace: the tools of their own connections

     The MCP server acting as the signed-in person: the bearer is the person's access token from the
    workspace's identity provider (a JWT checked like the end-user routes': JWKS, `iss`, `aud`, `exp`,
    RS256/ES256/EdDSA), obtained by the MCP authorization flow (401 → protected resource metadata → the
    provider). Stateless Streamable HTTP as `POST /mcp` (one JSON-RPC message per POST, JSON answers, no
    `Mcp-Session-Id`). `tools/list` lists the tools of the person's own active connections; `tools/call`
    acts only through the person's own connections: routing fields `connection_id` or `auth_config_id`
    (or neither, when one of their connections serves the tool), and `approval_id` (destructive tools).
    Another person's connection answers exactly like an unknown id (a tool error with the `not-found`
    problem) and is recorded as `access.denied` (`other_user`). Calls are recorded with the person
    (actor `user`) and the MCP client (`mcp_client` on `tool.requested`, from the token's `azp` or
    `client_id`). An `initialize` answered with a result opens a session: the answer carries `Mcp-
    Session-Id`, kept in the log for 24 hours (any instance knows it); later messages may present it.
    Within a session a `tools/call` retried with the same JSON-RPC id runs once and answers the first
    call's result; another call with the id, or a retry while the first still runs, is a JSON-RPC error
    (-32600) whose data is the problem (`mcp-request-id-reused`; `idempotency-key-in-use` with
    `retry_after` seconds). An unknown or ended session, or another caller's, answers 404 `mcp-session-
    not-found` (initialize again). GET and DELETE are not served.

    Args:
        workspace_id (str):
        mcp_session_id (str | Unset):
        body (McpPersonBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | McpPersonResponse200 | Problem
    """

    return sync_detailed(
        workspace_id=workspace_id,
        client=client,
        body=body,
        mcp_session_id=mcp_session_id,
    ).parsed


async def asyncio_detailed(
    workspace_id: str,
    *,
    client: AuthenticatedClient,
    body: McpPersonBody,
    mcp_session_id: str | Unset = UNSET,
) -> Response[Any | McpPersonResponse200 | Problem]:
    """MCP as the signed-in person of a workspace: the tools of their own connections

     The MCP server acting as the signed-in person: the bearer is the person's access token from the
    workspace's identity provider (a JWT checked like the end-user routes': JWKS, `iss`, `aud`, `exp`,
    RS256/ES256/EdDSA), obtained by the MCP authorization flow (401 → protected resource metadata → the
    provider). Stateless Streamable HTTP as `POST /mcp` (one JSON-RPC message per POST, JSON answers, no
    `Mcp-Session-Id`). `tools/list` lists the tools of the person's own active connections; `tools/call`
    acts only through the person's own connections: routing fields `connection_id` or `auth_config_id`
    (or neither, when one of their connections serves the tool), and `approval_id` (destructive tools).
    Another person's connection answers exactly like an unknown id (a tool error with the `not-found`
    problem) and is recorded as `access.denied` (`other_user`). Calls are recorded with the person
    (actor `user`) and the MCP client (`mcp_client` on `tool.requested`, from the token's `azp` or
    `client_id`). An `initialize` answered with a result opens a session: the answer carries `Mcp-
    Session-Id`, kept in the log for 24 hours (any instance knows it); later messages may present it.
    Within a session a `tools/call` retried with the same JSON-RPC id runs once and answers the first
    call's result; another call with the id, or a retry while the first still runs, is a JSON-RPC error
    (-32600) whose data is the problem (`mcp-request-id-reused`; `idempotency-key-in-use` with
    `retry_after` seconds). An unknown or ended session, or another caller's, answers 404 `mcp-session-
    not-found` (initialize again). GET and DELETE are not served.

    Args:
        workspace_id (str):
        mcp_session_id (str | Unset):
        body (McpPersonBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | McpPersonResponse200 | Problem]
    """

    kwargs = _get_kwargs(
        workspace_id=workspace_id,
        body=body,
        mcp_session_id=mcp_session_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    workspace_id: str,
    *,
    client: AuthenticatedClient,
    body: McpPersonBody,
    mcp_session_id: str | Unset = UNSET,
) -> Any | McpPersonResponse200 | Problem | None:
    """MCP as the signed-in person of a workspace: the tools of their own connections

     The MCP server acting as the signed-in person: the bearer is the person's access token from the
    workspace's identity provider (a JWT checked like the end-user routes': JWKS, `iss`, `aud`, `exp`,
    RS256/ES256/EdDSA), obtained by the MCP authorization flow (401 → protected resource metadata → the
    provider). Stateless Streamable HTTP as `POST /mcp` (one JSON-RPC message per POST, JSON answers, no
    `Mcp-Session-Id`). `tools/list` lists the tools of the person's own active connections; `tools/call`
    acts only through the person's own connections: routing fields `connection_id` or `auth_config_id`
    (or neither, when one of their connections serves the tool), and `approval_id` (destructive tools).
    Another person's connection answers exactly like an unknown id (a tool error with the `not-found`
    problem) and is recorded as `access.denied` (`other_user`). Calls are recorded with the person
    (actor `user`) and the MCP client (`mcp_client` on `tool.requested`, from the token's `azp` or
    `client_id`). An `initialize` answered with a result opens a session: the answer carries `Mcp-
    Session-Id`, kept in the log for 24 hours (any instance knows it); later messages may present it.
    Within a session a `tools/call` retried with the same JSON-RPC id runs once and answers the first
    call's result; another call with the id, or a retry while the first still runs, is a JSON-RPC error
    (-32600) whose data is the problem (`mcp-request-id-reused`; `idempotency-key-in-use` with
    `retry_after` seconds). An unknown or ended session, or another caller's, answers 404 `mcp-session-
    not-found` (initialize again). GET and DELETE are not served.

    Args:
        workspace_id (str):
        mcp_session_id (str | Unset):
        body (McpPersonBody): A JSON-RPC 2.0 message (MCP)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | McpPersonResponse200 | Problem
    """

    return (
        await asyncio_detailed(
            workspace_id=workspace_id,
            client=client,
            body=body,
            mcp_session_id=mcp_session_id,
        )
    ).parsed
