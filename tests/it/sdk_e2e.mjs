// @ts-check
// The TypeScript SDK (tools/sdk/typescript: openapi-fetch typed by the generated
// schema.d.ts) end to end against a running `serve`; tests/it/sdk.rs type-checks this file
// with tsc (strict) and runs it with node, "authledger-client" resolving to the SDK. As an
// admin: an auth config, a tool on the test's upstream and an end user's connection; a
// scoped token bound to the connection and the tool; the tool call through the gateway
// with that token; the audit of the call. Prints a JSON report on stdout; exits non-zero
// (with the problem) on any unexpected answer.
//
// Usage: node sdk_e2e.mjs --url URL --admin-key KEY --upstream URL --user-key SECRET

import { parseArgs } from "node:util";

import { createClient } from "authledger-client";

const TOOL = "crm.whoami";
const USER = "user-42";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    "admin-key": { type: "string" },
    upstream: { type: "string" },
    "user-key": { type: "string" },
  },
});

/** @param {string} name */
function arg(name) {
  const value = /** @type {Record<string, string | undefined>} */ (values)[name];
  if (value === undefined) {
    fail(`--${name} is required`);
  }
  return value;
}

/**
 * @param {string} message
 * @returns {never}
 */
function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/**
 * The answer's data when it has `status`; otherwise the problem, and exit.
 * @template T
 * @param {string} what
 * @param {{ data?: T, error?: unknown, response: Response }} answer
 * @param {number} status
 * @returns {T}
 */
function ok(what, answer, status) {
  if (answer.response.status !== status || answer.data === undefined) {
    fail(`${what}: ${answer.response.status} ${JSON.stringify(answer.error)}`);
  }
  return answer.data;
}

const baseUrl = arg("url");
const admin = createClient({ baseUrl, apiKey: arg("admin-key") });

const config = ok(
  "create auth config",
  await admin.POST("/v1/auth-configs", {
    body: {
      name: "Acme CRM",
      provider: "custom",
      auth_type: "api_key",
      api_key: { key_name: "X-Api-Key", location: "header", prefix: null },
    },
  }),
  201,
);
ok(
  "define tool",
  await admin.POST("/v1/tools", {
    body: {
      name: TOOL,
      provider: "custom",
      description: "Who the CRM says the caller is",
      method: "GET",
      base_url: arg("upstream"),
      path: "/api/me",
      parameters: { type: "object" },
      risk: "read",
    },
  }),
  201,
);
const connection = ok(
  "create connection",
  await admin.POST("/v1/connections", {
    body: { auth_config_id: config.id, user_id: USER, credentials: { api_key: arg("user-key") } },
  }),
  201,
);
const token = ok(
  "issue scoped token",
  await admin.POST("/v1/tokens", {
    body: { connection_id: connection.id, tool: TOOL, ttl_seconds: 120, max_uses: 1 },
  }),
  201,
);

// The agent: only the scoped token, bound to the connection and the tool.
const agent = createClient({ baseUrl, apiKey: token.token });
const result = ok(
  "execute tool",
  await agent.POST("/v1/tools/execute", { body: { tool: TOOL, arguments: {} } }),
  200,
);
// Used up (max_uses 1): the second call is refused with a problem.
const again = await agent.POST("/v1/tools/execute", { body: { tool: TOOL, arguments: {} } });
if (again.error === undefined) {
  fail(`a used-up token called the tool: ${again.response.status}`);
}

// The audit of the call (projections follow the log: wait for the outcome).
const deadline = Date.now() + 15_000;
let page;
for (;;) {
  page = ok(
    "audit events",
    await admin.GET("/v1/audit/events", {
      params: { query: { connection_id: connection.id, kind: "tool.", order: "asc", limit: 100 } },
    }),
    200,
  );
  if (page.items.some((e) => e.kind === "tool.completed") || Date.now() > deadline) {
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
const current = ok(
  "get connection",
  await admin.GET("/v1/connections/{id}", { params: { path: { id: connection.id } } }),
  200,
);

const report = {
  auth_config_id: config.id,
  connection_id: connection.id,
  connection_status: current.status,
  token_id: token.id,
  token_tool: token.tool,
  tool_call_id: result.tool_call_id,
  upstream_status: result.status,
  upstream_body: result.body,
  refused_again: { status: again.response.status, type: again.error.type },
  audit: page.items.map((e) => ({
    kind: e.kind,
    tool: e.tool,
    token_id: e.token_id,
    outcome: e.outcome,
  })),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
