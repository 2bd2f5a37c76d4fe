from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.undone_tool_call import UndoneToolCall
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    idempotency_key: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/tool-calls/{id}/undo".format(
            id=quote(str(id), safe=""),
        ),
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | UndoneToolCall | None:
    if response.status_code == 200:
        response_200 = UndoneToolCall.from_dict(response.json())

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

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = Problem.from_dict(response.json())

        return response_409

    if response.status_code == 422:
        response_422 = Problem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = Problem.from_dict(response.json())

        return response_429

    if response.status_code == 502:
        response_502 = Problem.from_dict(response.json())

        return response_502

    if response.status_code == 503:
        response_503 = Problem.from_dict(response.json())

        return response_503

    if response.status_code == 504:
        response_504 = Problem.from_dict(response.json())

        return response_504

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Problem | UndoneToolCall]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    idempotency_key: str | Unset = UNSET,
) -> Response[Problem | UndoneToolCall]:
    """Undo a tool call: send the compensating request its tool declares (tool.undo_requested before it,
    tool.undone after); an admin or developer key, or the connection's end user with a JWT

     Allowed once, within the tool's undo window (default 24 h) after the call succeeded; decided on the
    call's own aggregate, so of concurrent requests (any instance) one undoes. The compensating request
    was fixed when the call completed (tool.completed `undo`) and is sent like a call: the connection's
    credential refreshed before use and injected, the destination policy, no redirects, the answer
    scrubbed. 409 `not-undoable` (the tool declares no undo, or the call did not succeed), `undo-window-
    closed`, `already-undone`, `undo-in-progress`; 502 `undo-failed` with `upstream_status` when the
    upstream refused or failed (recorded in tool.undone; it may be tried again). Another workspace's or
    another person's call answers 404 like an unknown id, and the attempt is recorded as access.denied.

    Args:
        id (str):
        idempotency_key (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | UndoneToolCall]
    """

    kwargs = _get_kwargs(
        id=id,
        idempotency_key=idempotency_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient,
    idempotency_key: str | Unset = UNSET,
) -> Problem | UndoneToolCall | None:
    """Undo a tool call: send the compensating request its tool declares (tool.undo_requested before it,
    tool.undone after); an admin or developer key, or the connection's end user with a JWT

     Allowed once, within the tool's undo window (default 24 h) after the call succeeded; decided on the
    call's own aggregate, so of concurrent requests (any instance) one undoes. The compensating request
    was fixed when the call completed (tool.completed `undo`) and is sent like a call: the connection's
    credential refreshed before use and injected, the destination policy, no redirects, the answer
    scrubbed. 409 `not-undoable` (the tool declares no undo, or the call did not succeed), `undo-window-
    closed`, `already-undone`, `undo-in-progress`; 502 `undo-failed` with `upstream_status` when the
    upstream refused or failed (recorded in tool.undone; it may be tried again). Another workspace's or
    another person's call answers 404 like an unknown id, and the attempt is recorded as access.denied.

    Args:
        id (str):
        idempotency_key (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | UndoneToolCall
    """

    return sync_detailed(
        id=id,
        client=client,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    idempotency_key: str | Unset = UNSET,
) -> Response[Problem | UndoneToolCall]:
    """Undo a tool call: send the compensating request its tool declares (tool.undo_requested before it,
    tool.undone after); an admin or developer key, or the connection's end user with a JWT

     Allowed once, within the tool's undo window (default 24 h) after the call succeeded; decided on the
    call's own aggregate, so of concurrent requests (any instance) one undoes. The compensating request
    was fixed when the call completed (tool.completed `undo`) and is sent like a call: the connection's
    credential refreshed before use and injected, the destination policy, no redirects, the answer
    scrubbed. 409 `not-undoable` (the tool declares no undo, or the call did not succeed), `undo-window-
    closed`, `already-undone`, `undo-in-progress`; 502 `undo-failed` with `upstream_status` when the
    upstream refused or failed (recorded in tool.undone; it may be tried again). Another workspace's or
    another person's call answers 404 like an unknown id, and the attempt is recorded as access.denied.

    Args:
        id (str):
        idempotency_key (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | UndoneToolCall]
    """

    kwargs = _get_kwargs(
        id=id,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
    idempotency_key: str | Unset = UNSET,
) -> Problem | UndoneToolCall | None:
    """Undo a tool call: send the compensating request its tool declares (tool.undo_requested before it,
    tool.undone after); an admin or developer key, or the connection's end user with a JWT

     Allowed once, within the tool's undo window (default 24 h) after the call succeeded; decided on the
    call's own aggregate, so of concurrent requests (any instance) one undoes. The compensating request
    was fixed when the call completed (tool.completed `undo`) and is sent like a call: the connection's
    credential refreshed before use and injected, the destination policy, no redirects, the answer
    scrubbed. 409 `not-undoable` (the tool declares no undo, or the call did not succeed), `undo-window-
    closed`, `already-undone`, `undo-in-progress`; 502 `undo-failed` with `upstream_status` when the
    upstream refused or failed (recorded in tool.undone; it may be tried again). Another workspace's or
    another person's call answers 404 like an unknown id, and the attempt is recorded as access.denied.

    Args:
        id (str):
        idempotency_key (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | UndoneToolCall
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            idempotency_key=idempotency_key,
        )
    ).parsed
