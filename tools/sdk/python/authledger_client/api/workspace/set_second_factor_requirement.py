from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.second_factor_requirement import SecondFactorRequirement
from ...types import Response


def _get_kwargs(
    *,
    body: SecondFactorRequirement,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/v1/workspace/second-factor-requirement",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | SecondFactorRequirement | None:
    if response.status_code == 200:
        response_200 = SecondFactorRequirement.from_dict(response.json())

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
) -> Response[Problem | SecondFactorRequirement]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: SecondFactorRequirement,
) -> Response[Problem | SecondFactorRequirement]:
    """Require every member to sign in to the console with a second factor, or leave it to each member
    (workspace.second_factor_requirement_set; the rule already in force is answered 200 and writes
    nothing)

    Args:
        body (SecondFactorRequirement):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | SecondFactorRequirement]
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
    body: SecondFactorRequirement,
) -> Problem | SecondFactorRequirement | None:
    """Require every member to sign in to the console with a second factor, or leave it to each member
    (workspace.second_factor_requirement_set; the rule already in force is answered 200 and writes
    nothing)

    Args:
        body (SecondFactorRequirement):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | SecondFactorRequirement
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: SecondFactorRequirement,
) -> Response[Problem | SecondFactorRequirement]:
    """Require every member to sign in to the console with a second factor, or leave it to each member
    (workspace.second_factor_requirement_set; the rule already in force is answered 200 and writes
    nothing)

    Args:
        body (SecondFactorRequirement):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | SecondFactorRequirement]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: SecondFactorRequirement,
) -> Problem | SecondFactorRequirement | None:
    """Require every member to sign in to the console with a second factor, or leave it to each member
    (workspace.second_factor_requirement_set; the rule already in force is answered 200 and writes
    nothing)

    Args:
        body (SecondFactorRequirement):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | SecondFactorRequirement
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
