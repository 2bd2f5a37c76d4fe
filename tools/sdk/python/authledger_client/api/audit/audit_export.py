import datetime
from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.audit_export_format import AuditExportFormat
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    format_: AuditExportFormat | Unset = AuditExportFormat.JSONL,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    user_id: str | Unset = UNSET,
    auth_config_id: str | Unset = UNSET,
    connection_id: str | Unset = UNSET,
    outcome: str | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    json_format_: str | Unset = UNSET
    if not isinstance(format_, Unset):
        json_format_ = format_.value

    params["format"] = json_format_

    json_from_: str | Unset = UNSET
    if not isinstance(from_, Unset):
        json_from_ = from_.isoformat()
    params["from"] = json_from_

    json_to: str | Unset = UNSET
    if not isinstance(to, Unset):
        json_to = to.isoformat()
    params["to"] = json_to

    params["kind"] = kind

    params["actor"] = actor

    params["user_id"] = user_id

    params["auth_config_id"] = auth_config_id

    params["connection_id"] = connection_id

    params["outcome"] = outcome

    params["min_position"] = min_position

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/audit/export",
        "params": params,
    }

    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Problem | str | None:
    if response.status_code == 200:
        response_200 = response.text
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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Problem | str]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    format_: AuditExportFormat | Unset = AuditExportFormat.JSONL,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    user_id: str | Unset = UNSET,
    auth_config_id: str | Unset = UNSET,
    connection_id: str | Unset = UNSET,
    outcome: str | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> Response[Problem | str]:
    """Export the workspace's events matching the filters, oldest first, streamed

     JSONL is the verifiable export (`authledger-export/1`, schemas/README.md §7b: each event's stored
    envelope, with the checkpoint proofs); CSV is the flattened audit view for spreadsheets. Every audit
    query is itself recorded (`audit.queried`, with its filters) before it is answered; if it cannot be
    recorded it is refused (503).

    Args:
        format_ (AuditExportFormat | Unset):  Default: AuditExportFormat.JSONL.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        kind (str | Unset):
        actor (str | Unset):
        user_id (str | Unset):
        auth_config_id (str | Unset):
        connection_id (str | Unset):
        outcome (str | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | str]
    """

    kwargs = _get_kwargs(
        format_=format_,
        from_=from_,
        to=to,
        kind=kind,
        actor=actor,
        user_id=user_id,
        auth_config_id=auth_config_id,
        connection_id=connection_id,
        outcome=outcome,
        min_position=min_position,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    format_: AuditExportFormat | Unset = AuditExportFormat.JSONL,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    user_id: str | Unset = UNSET,
    auth_config_id: str | Unset = UNSET,
    connection_id: str | Unset = UNSET,
    outcome: str | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> Problem | str | None:
    """Export the workspace's events matching the filters, oldest first, streamed

     JSONL is the verifiable export (`authledger-export/1`, schemas/README.md §7b: each event's stored
    envelope, with the checkpoint proofs); CSV is the flattened audit view for spreadsheets. Every audit
    query is itself recorded (`audit.queried`, with its filters) before it is answered; if it cannot be
    recorded it is refused (503).

    Args:
        format_ (AuditExportFormat | Unset):  Default: AuditExportFormat.JSONL.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        kind (str | Unset):
        actor (str | Unset):
        user_id (str | Unset):
        auth_config_id (str | Unset):
        connection_id (str | Unset):
        outcome (str | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | str
    """

    return sync_detailed(
        client=client,
        format_=format_,
        from_=from_,
        to=to,
        kind=kind,
        actor=actor,
        user_id=user_id,
        auth_config_id=auth_config_id,
        connection_id=connection_id,
        outcome=outcome,
        min_position=min_position,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    format_: AuditExportFormat | Unset = AuditExportFormat.JSONL,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    user_id: str | Unset = UNSET,
    auth_config_id: str | Unset = UNSET,
    connection_id: str | Unset = UNSET,
    outcome: str | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> Response[Problem | str]:
    """Export the workspace's events matching the filters, oldest first, streamed

     JSONL is the verifiable export (`authledger-export/1`, schemas/README.md §7b: each event's stored
    envelope, with the checkpoint proofs); CSV is the flattened audit view for spreadsheets. Every audit
    query is itself recorded (`audit.queried`, with its filters) before it is answered; if it cannot be
    recorded it is refused (503).

    Args:
        format_ (AuditExportFormat | Unset):  Default: AuditExportFormat.JSONL.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        kind (str | Unset):
        actor (str | Unset):
        user_id (str | Unset):
        auth_config_id (str | Unset):
        connection_id (str | Unset):
        outcome (str | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | str]
    """

    kwargs = _get_kwargs(
        format_=format_,
        from_=from_,
        to=to,
        kind=kind,
        actor=actor,
        user_id=user_id,
        auth_config_id=auth_config_id,
        connection_id=connection_id,
        outcome=outcome,
        min_position=min_position,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    format_: AuditExportFormat | Unset = AuditExportFormat.JSONL,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    user_id: str | Unset = UNSET,
    auth_config_id: str | Unset = UNSET,
    connection_id: str | Unset = UNSET,
    outcome: str | Unset = UNSET,
    min_position: int | Unset = UNSET,
) -> Problem | str | None:
    """Export the workspace's events matching the filters, oldest first, streamed

     JSONL is the verifiable export (`authledger-export/1`, schemas/README.md §7b: each event's stored
    envelope, with the checkpoint proofs); CSV is the flattened audit view for spreadsheets. Every audit
    query is itself recorded (`audit.queried`, with its filters) before it is answered; if it cannot be
    recorded it is refused (503).

    Args:
        format_ (AuditExportFormat | Unset):  Default: AuditExportFormat.JSONL.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        kind (str | Unset):
        actor (str | Unset):
        user_id (str | Unset):
        auth_config_id (str | Unset):
        connection_id (str | Unset):
        outcome (str | Unset):
        min_position (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | str
    """

    return (
        await asyncio_detailed(
            client=client,
            format_=format_,
            from_=from_,
            to=to,
            kind=kind,
            actor=actor,
            user_id=user_id,
            auth_config_id=auth_config_id,
            connection_id=connection_id,
            outcome=outcome,
            min_position=min_position,
        )
    ).parsed
