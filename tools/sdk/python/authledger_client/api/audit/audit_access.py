import datetime
from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.audit_access_response_200 import AuditAccessResponse200
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    user_id: str,
    as_of: datetime.datetime | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["user_id"] = user_id

    json_as_of: str | Unset = UNSET
    if not isinstance(as_of, Unset):
        json_as_of = as_of.isoformat()
    params["as_of"] = json_as_of

    params["min_position"] = min_position

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/audit/access",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> AuditAccessResponse200 | Problem | None:
    if response.status_code == 200:
        response_200 = AuditAccessResponse200.from_dict(response.json())

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
) -> Response[AuditAccessResponse200 | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    user_id: str,
    as_of: datetime.datetime | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> Response[AuditAccessResponse200 | Problem]:
    """Who could act as this person, and who did

     For each of the user's connections (as of `as_of`, default now): status, scopes, whether it could be
    used, and every actor that acted on it with how often and when last. Recorded as `audit.queried`.

    Args:
        user_id (str):
        as_of (datetime.datetime | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuditAccessResponse200 | Problem]
    """

    kwargs = _get_kwargs(
        user_id=user_id,
        as_of=as_of,
        min_position=min_position,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    user_id: str,
    as_of: datetime.datetime | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> AuditAccessResponse200 | Problem | None:
    """Who could act as this person, and who did

     For each of the user's connections (as of `as_of`, default now): status, scopes, whether it could be
    used, and every actor that acted on it with how often and when last. Recorded as `audit.queried`.

    Args:
        user_id (str):
        as_of (datetime.datetime | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuditAccessResponse200 | Problem
    """

    return sync_detailed(
        client=client,
        user_id=user_id,
        as_of=as_of,
        min_position=min_position,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    user_id: str,
    as_of: datetime.datetime | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> Response[AuditAccessResponse200 | Problem]:
    """Who could act as this person, and who did

     For each of the user's connections (as of `as_of`, default now): status, scopes, whether it could be
    used, and every actor that acted on it with how often and when last. Recorded as `audit.queried`.

    Args:
        user_id (str):
        as_of (datetime.datetime | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuditAccessResponse200 | Problem]
    """

    kwargs = _get_kwargs(
        user_id=user_id,
        as_of=as_of,
        min_position=min_position,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    user_id: str,
    as_of: datetime.datetime | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> AuditAccessResponse200 | Problem | None:
    """Who could act as this person, and who did

     For each of the user's connections (as of `as_of`, default now): status, scopes, whether it could be
    used, and every actor that acted on it with how often and when last. Recorded as `audit.queried`.

    Args:
        user_id (str):
        as_of (datetime.datetime | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuditAccessResponse200 | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
            user_id=user_id,
            as_of=as_of,
            min_position=min_position,
        )
    ).parsed
