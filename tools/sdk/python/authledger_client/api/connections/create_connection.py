from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.create_connection import CreateConnection
from ...models.created_connection import CreatedConnection
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: CreateConnection,
    idempotency_key: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/connections",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> CreatedConnection | Problem | None:
    if response.status_code == 201:
        response_201 = CreatedConnection.from_dict(response.json())

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
) -> Response[CreatedConnection | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: CreateConnection,
    idempotency_key: str | Unset = UNSET,
) -> Response[CreatedConnection | Problem]:
    """Create a connection: oauth2 starts the connect flow (send the end user to connect_url, the
    provider's consent); other auth types are active at once with credentials, or without them start a
    hosted connect link (connect_url: authledger's page where the end user gives them; single use, 30
    minutes)

    Args:
        idempotency_key (str | Unset):
        body (CreateConnection): oauth2 auth configs: `redirect_url` (and optionally `scopes`), no
            `credentials`; the answer carries `connect_url`. Other auth types: `credentials` shaped by
            the auth type (none for no_auth), no `redirect_url` or `scopes`; the connection is active
            at once. Or, for api_key, bearer_token, basic and postgres, no `credentials` (optionally
            `redirect_url`): the connection is `initiated` and `connect_url` is the hosted connect
            page (`{public_url}/connect/{link}`), a single-use link valid 30 minutes. Errors never
            echo a credential.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CreatedConnection | Problem]
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
    body: CreateConnection,
    idempotency_key: str | Unset = UNSET,
) -> CreatedConnection | Problem | None:
    """Create a connection: oauth2 starts the connect flow (send the end user to connect_url, the
    provider's consent); other auth types are active at once with credentials, or without them start a
    hosted connect link (connect_url: authledger's page where the end user gives them; single use, 30
    minutes)

    Args:
        idempotency_key (str | Unset):
        body (CreateConnection): oauth2 auth configs: `redirect_url` (and optionally `scopes`), no
            `credentials`; the answer carries `connect_url`. Other auth types: `credentials` shaped by
            the auth type (none for no_auth), no `redirect_url` or `scopes`; the connection is active
            at once. Or, for api_key, bearer_token, basic and postgres, no `credentials` (optionally
            `redirect_url`): the connection is `initiated` and `connect_url` is the hosted connect
            page (`{public_url}/connect/{link}`), a single-use link valid 30 minutes. Errors never
            echo a credential.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CreatedConnection | Problem
    """

    return sync_detailed(
        client=client,
        body=body,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: CreateConnection,
    idempotency_key: str | Unset = UNSET,
) -> Response[CreatedConnection | Problem]:
    """Create a connection: oauth2 starts the connect flow (send the end user to connect_url, the
    provider's consent); other auth types are active at once with credentials, or without them start a
    hosted connect link (connect_url: authledger's page where the end user gives them; single use, 30
    minutes)

    Args:
        idempotency_key (str | Unset):
        body (CreateConnection): oauth2 auth configs: `redirect_url` (and optionally `scopes`), no
            `credentials`; the answer carries `connect_url`. Other auth types: `credentials` shaped by
            the auth type (none for no_auth), no `redirect_url` or `scopes`; the connection is active
            at once. Or, for api_key, bearer_token, basic and postgres, no `credentials` (optionally
            `redirect_url`): the connection is `initiated` and `connect_url` is the hosted connect
            page (`{public_url}/connect/{link}`), a single-use link valid 30 minutes. Errors never
            echo a credential.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CreatedConnection | Problem]
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
    body: CreateConnection,
    idempotency_key: str | Unset = UNSET,
) -> CreatedConnection | Problem | None:
    """Create a connection: oauth2 starts the connect flow (send the end user to connect_url, the
    provider's consent); other auth types are active at once with credentials, or without them start a
    hosted connect link (connect_url: authledger's page where the end user gives them; single use, 30
    minutes)

    Args:
        idempotency_key (str | Unset):
        body (CreateConnection): oauth2 auth configs: `redirect_url` (and optionally `scopes`), no
            `credentials`; the answer carries `connect_url`. Other auth types: `credentials` shaped by
            the auth type (none for no_auth), no `redirect_url` or `scopes`; the connection is active
            at once. Or, for api_key, bearer_token, basic and postgres, no `credentials` (optionally
            `redirect_url`): the connection is `initiated` and `connect_url` is the hosted connect
            page (`{public_url}/connect/{link}`), a single-use link valid 30 minutes. Errors never
            echo a credential.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CreatedConnection | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            idempotency_key=idempotency_key,
        )
    ).parsed
