from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.dynamic_credential import DynamicCredential
from ...models.issue_dynamic_credentials import IssueDynamicCredentials
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    body: IssueDynamicCredentials,
    idempotency_key: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/connections/{id}/dynamic-credentials".format(
            id=quote(str(id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> DynamicCredential | Problem | None:
    if response.status_code == 201:
        response_201 = DynamicCredential.from_dict(response.json())

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

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[DynamicCredential | Problem]:
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
    body: IssueDynamicCredentials,
    idempotency_key: str | Unset = UNSET,
) -> Response[DynamicCredential | Problem]:
    """A short-lived database user for an agent (PostgreSQL or MySQL connector with dynamic_credentials
    on): made with a random password, the named grants and an expiry, recorded as credential.issued (no
    password) before it is made, answered once, and dropped at expiry by the scheduler
    (credential.expired) or when the connection is revoked (credential.revoked). A TTL or grant beyond
    the auth config's policy is a 422; a scoped token must be for this connection and not bound to a
    tool.

    Args:
        id (str):
        idempotency_key (str | Unset):
        body (IssueDynamicCredentials):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DynamicCredential | Problem]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
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
    body: IssueDynamicCredentials,
    idempotency_key: str | Unset = UNSET,
) -> DynamicCredential | Problem | None:
    """A short-lived database user for an agent (PostgreSQL or MySQL connector with dynamic_credentials
    on): made with a random password, the named grants and an expiry, recorded as credential.issued (no
    password) before it is made, answered once, and dropped at expiry by the scheduler
    (credential.expired) or when the connection is revoked (credential.revoked). A TTL or grant beyond
    the auth config's policy is a 422; a scoped token must be for this connection and not bound to a
    tool.

    Args:
        id (str):
        idempotency_key (str | Unset):
        body (IssueDynamicCredentials):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DynamicCredential | Problem
    """

    return sync_detailed(
        id=id,
        client=client,
        body=body,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    body: IssueDynamicCredentials,
    idempotency_key: str | Unset = UNSET,
) -> Response[DynamicCredential | Problem]:
    """A short-lived database user for an agent (PostgreSQL or MySQL connector with dynamic_credentials
    on): made with a random password, the named grants and an expiry, recorded as credential.issued (no
    password) before it is made, answered once, and dropped at expiry by the scheduler
    (credential.expired) or when the connection is revoked (credential.revoked). A TTL or grant beyond
    the auth config's policy is a 422; a scoped token must be for this connection and not bound to a
    tool.

    Args:
        id (str):
        idempotency_key (str | Unset):
        body (IssueDynamicCredentials):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DynamicCredential | Problem]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
    body: IssueDynamicCredentials,
    idempotency_key: str | Unset = UNSET,
) -> DynamicCredential | Problem | None:
    """A short-lived database user for an agent (PostgreSQL or MySQL connector with dynamic_credentials
    on): made with a random password, the named grants and an expiry, recorded as credential.issued (no
    password) before it is made, answered once, and dropped at expiry by the scheduler
    (credential.expired) or when the connection is revoked (credential.revoked). A TTL or grant beyond
    the auth config's policy is a 422; a scoped token must be for this connection and not bound to a
    tool.

    Args:
        id (str):
        idempotency_key (str | Unset):
        body (IssueDynamicCredentials):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DynamicCredential | Problem
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            body=body,
            idempotency_key=idempotency_key,
        )
    ).parsed
