from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.my_approvals_response_200 import MyApprovalsResponse200
from ...models.problem import Problem
from ...types import Response


def _get_kwargs() -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/me/approvals",
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> MyApprovalsResponse200 | Problem | None:
    if response.status_code == 200:
        response_200 = MyApprovalsResponse200.from_dict(response.json())

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
) -> Response[MyApprovalsResponse200 | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[MyApprovalsResponse200 | Problem]:
    """The end user's step-up approval requests, newest first (status pending, approved, denied, consumed
    or expired); approve or deny with POST /v1/approvals/{id}/approve|deny

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[MyApprovalsResponse200 | Problem]
    """

    kwargs = _get_kwargs()

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
) -> MyApprovalsResponse200 | Problem | None:
    """The end user's step-up approval requests, newest first (status pending, approved, denied, consumed
    or expired); approve or deny with POST /v1/approvals/{id}/approve|deny

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        MyApprovalsResponse200 | Problem
    """

    return sync_detailed(
        client=client,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[MyApprovalsResponse200 | Problem]:
    """The end user's step-up approval requests, newest first (status pending, approved, denied, consumed
    or expired); approve or deny with POST /v1/approvals/{id}/approve|deny

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[MyApprovalsResponse200 | Problem]
    """

    kwargs = _get_kwargs()

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
) -> MyApprovalsResponse200 | Problem | None:
    """The end user's step-up approval requests, newest first (status pending, approved, denied, consumed
    or expired); approve or deny with POST /v1/approvals/{id}/approve|deny

     End users call with `Authorization: Bearer <JWT from the workspace's identity provider>` and
    `Authledger-Workspace: <workspace id>`. API keys are not accepted here.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        MyApprovalsResponse200 | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
        )
    ).parsed
