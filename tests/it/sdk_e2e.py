"""The generated Python SDK (tools/sdk/python) end to end against a running `serve`
(tests/it/sdk.rs runs it with that package on PYTHONPATH): as an admin, an auth config, a
tool on the test's upstream and an end user's connection; a scoped token bound to the
connection and the tool; the tool call through the gateway with that token; the audit of
the call. Prints a JSON report on stdout; exits non-zero (with the problem) on any
unexpected answer.

Usage: sdk_e2e.py --url URL --admin-key KEY --upstream URL --user-key SECRET
"""

import argparse
import json
import sys
import time

from authledger_client import AuthenticatedClient
from authledger_client.api.audit import audit_events
from authledger_client.api.auth_configs import create_auth_config
from authledger_client.api.connections import create_connection, get_connection
from authledger_client.api.tokens import issue_token
from authledger_client.api.tools import define_tool, execute_tool
from authledger_client.models import (
    ApiKeyCredentials,
    AuditEventsOrder,
    CreateAuthConfig,
    CreateAuthConfigApiKey,
    CreateAuthConfigApiKeyLocation,
    CreateAuthConfigAuthType,
    CreateConnection,
    ExecuteTool,
    ExecuteToolArguments,
    Problem,
    ScopedTokenRequest,
    ToolDefinition,
    ToolDefinitionMethod,
    ToolDefinitionParameters,
    ToolDefinitionRisk,
)

TOOL = "crm.whoami"
USER = "user-42"


def parsed(what, response, status):
    """The answer's model when `response` has `status`; otherwise the problem, and exit."""
    if response.status_code != status or isinstance(response.parsed, Problem):
        sys.exit(f"{what}: {response.status_code} {response.content.decode(errors='replace')}")
    return response.parsed


def main():
    p = argparse.ArgumentParser()
    for name in ("--url", "--admin-key", "--upstream", "--user-key"):
        p.add_argument(name, required=True)
    args = p.parse_args()

    with AuthenticatedClient(base_url=args.url, token=args.admin_key) as admin:
        config = parsed(
            "create auth config",
            create_auth_config.sync_detailed(
                client=admin,
                body=CreateAuthConfig(
                    name="Acme CRM",
                    provider="custom",
                    auth_type=CreateAuthConfigAuthType.API_KEY,
                    api_key=CreateAuthConfigApiKey(
                        key_name="X-Api-Key",
                        location=CreateAuthConfigApiKeyLocation.HEADER,
                        prefix=None,
                    ),
                ),
            ),
            201,
        )
        parsed(
            "define tool",
            define_tool.sync_detailed(
                client=admin,
                body=ToolDefinition(
                    name=TOOL,
                    provider="custom",
                    description="Who the CRM says the caller is",
                    method=ToolDefinitionMethod.GET,
                    base_url=args.upstream,
                    path="/api/me",
                    parameters=ToolDefinitionParameters(type_="object"),
                    risk=ToolDefinitionRisk.READ,
                ),
            ),
            201,
        )
        connection = parsed(
            "create connection",
            create_connection.sync_detailed(
                client=admin,
                body=CreateConnection(
                    auth_config_id=config.id,
                    user_id=USER,
                    credentials=ApiKeyCredentials(api_key=args.user_key),
                ),
            ),
            201,
        )
        token = parsed(
            "issue scoped token",
            issue_token.sync_detailed(
                client=admin,
                body=ScopedTokenRequest(
                    connection_id=connection.id, tool=TOOL, ttl_seconds=120, max_uses=1
                ),
            ),
            201,
        )

        # The agent: only the scoped token, bound to the connection and the tool.
        with AuthenticatedClient(base_url=args.url, token=token.token) as agent:
            call = execute_tool.sync_detailed(
                client=agent, body=ExecuteTool(tool=TOOL, arguments=ExecuteToolArguments())
            )
            result = parsed("execute tool", call, 200)
            # Used up (max_uses 1): the second call is refused with a problem.
            again = execute_tool.sync_detailed(
                client=agent, body=ExecuteTool(tool=TOOL, arguments=ExecuteToolArguments())
            )
            if not isinstance(again.parsed, Problem):
                sys.exit(f"a used-up token called the tool: {again.status_code} {again.content!r}")

        # The audit of the call (projections follow the log: wait for the outcome).
        deadline = time.monotonic() + 15
        while True:
            page = parsed(
                "audit events",
                audit_events.sync_detailed(
                    client=admin,
                    connection_id=connection.id,
                    kind="tool.",
                    order=AuditEventsOrder.ASC,
                    limit=100,
                ),
                200,
            )
            if any(e.kind == "tool.completed" for e in page.items) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        status = parsed(
            "get connection", get_connection.sync_detailed(connection.id, client=admin), 200
        ).status

    report = {
        "auth_config_id": config.id,
        "connection_id": connection.id,
        "connection_status": status.value,
        "token_id": token.id,
        "token_tool": token.tool,
        "tool_call_id": result.tool_call_id,
        "upstream_status": result.status,
        "upstream_body": result.body,
        "refused_again": {"status": again.status_code, "type": again.parsed.type_},
        "audit": [
            {"kind": e.kind, "tool": e.tool, "token_id": e.token_id, "outcome": e.outcome}
            for e in page.items
        ],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
