from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.connection_list import ConnectionList
from ...models.my_connections_status import MyConnectionsStatus
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    auth_config_id: str | Unset = UNSET,
    status: MyConnectionsStatus | Unset = UNSET,
    cursor: str | Unset = UNSET,
    limit: int | Unset = 50,
    min_position: int | Unset = UNSET,
    authledger_workspace: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Authledger-Workspace"] = authledger_workspace

    params: dict[str, Any] = {}

    params["auth_config_id"] = auth_config_id

    json_status: str | Unset = UNSET
    if not isinstance(status, Unset):
        json_status = status.value

    params["status"] = json_status

    params["cursor"] = cursor

    params["limit"] = limit

    params["min_position"] = min_position

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/me/connections",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ConnectionList | Problem | None:
    if response.status_code == 200:
        response_200 = ConnectionList.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = Problem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

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
) -> Response[ConnectionList | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    auth_config_id: str | Unset = UNSET,
    status: MyConnectionsStatus | Unset = UNSET,
    cursor: str | Unset = UNSET,
    limit: int | Unset = 50,
    min_position: int | Unset = UNSET,
    authledger_workspace: str,
) -> Response[ConnectionList | Problem]:
    """The end user's own connections (never another user's)

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Args:
        auth_config_id (str | Unset):
        status (MyConnectionsStatus | Unset):
        cursor (str | Unset):
        limit (int | Unset):  Default: 50.
        min_position (int | Unset):
        authledger_workspace (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ConnectionList | Problem]
    """

    kwargs = _get_kwargs(
        auth_config_id=auth_config_id,
        status=status,
        cursor=cursor,
        limit=limit,
        min_position=min_position,
        authledger_workspace=authledger_workspace,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    auth_config_id: str | Unset = UNSET,
    status: MyConnectionsStatus | Unset = UNSET,
    cursor: str | Unset = UNSET,
    limit: int | Unset = 50,
    min_position: int | Unset = UNSET,
    authledger_workspace: str,
) -> ConnectionList | Problem | None:
    """The end user's own connections (never another user's)

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Args:
        auth_config_id (str | Unset):
        status (MyConnectionsStatus | Unset):
        cursor (str | Unset):
        limit (int | Unset):  Default: 50.
        min_position (int | Unset):
        authledger_workspace (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ConnectionList | Problem
    """

    return sync_detailed(
        client=client,
        auth_config_id=auth_config_id,
        status=status,
        cursor=cursor,
        limit=limit,
        min_position=min_position,
        authledger_workspace=authledger_workspace,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    auth_config_id: str | Unset = UNSET,
    status: MyConnectionsStatus | Unset = UNSET,
    cursor: str | Unset = UNSET,
    limit: int | Unset = 50,
    min_position: int | Unset = UNSET,
    authledger_workspace: str,
) -> Response[ConnectionList | Problem]:
    """The end user's own connections (never another user's)

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Args:
        auth_config_id (str | Unset):
        status (MyConnectionsStatus | Unset):
        cursor (str | Unset):
        limit (int | Unset):  Default: 50.
        min_position (int | Unset):
        authledger_workspace (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ConnectionList | Problem]
    """

    kwargs = _get_kwargs(
        auth_config_id=auth_config_id,
        status=status,
        cursor=cursor,
        limit=limit,
        min_position=min_position,
        authledger_workspace=authledger_workspace,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    auth_config_id: str | Unset = UNSET,
    status: MyConnectionsStatus | Unset = UNSET,
    cursor: str | Unset = UNSET,
    limit: int | Unset = 50,
    min_position: int | Unset = UNSET,
    authledger_workspace: str,
) -> ConnectionList | Problem | None:
    """The end user's own connections (never another user's)

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Args:
        auth_config_id (str | Unset):
        status (MyConnectionsStatus | Unset):
        cursor (str | Unset):
        limit (int | Unset):  Default: 50.
        min_position (int | Unset):
        authledger_workspace (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ConnectionList | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
            auth_config_id=auth_config_id,
            status=status,
            cursor=cursor,
            limit=limit,
            min_position=min_position,
            authledger_workspace=authledger_workspace,
        )
    ).parsed
