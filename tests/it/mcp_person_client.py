"""An MCP client signing in as a person: the official MCP Python SDK (`mcp`, pinned in
tools/test) against a real `serve`, driven by tests/it/mcp_person.rs.

It follows the MCP authorization specification with the SDK's own OAuth provider: the
first request is answered 401 with `WWW-Authenticate: Bearer resource_metadata=...`; the
SDK reads the protected resource metadata, then the authorization server's metadata (the
workspace's identity provider, the local OIDC fixture), and runs authorization code + PKCE
with a client pre-registered at the provider (from its token storage, so no dynamic
registration). The "browser" is this script: it opens the authorization URL over HTTP,
signs in on the provider's login page as `--email`, and hands the code from the redirect
to the SDK's callback handler.

Then it initializes, lists tools and makes the calls given with `--call NAME JSON` (the
arguments as JSON), and prints one JSON report on stdout: every HTTP exchange in order
(method, URL, status, WWW-Authenticate), the server's name, the tool names, and each
call's `isError` and text, and the access token it obtained.
"""

import argparse
import asyncio
import html
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class Storage(TokenStorage):
    """Keeps the pre-registered client and the tokens in memory."""

    def __init__(self, client: OAuthClientInformationFull):
        self.client = client
        self.tokens: OAuthToken | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


HIDDEN = re.compile(r'<input type=hidden name="([^"]+)" value="([^"]*)">')


class Browser:
    """Follows the authorization URL to the provider's login page, signs in as `email`."""

    def __init__(self, email: str):
        self.email = email
        self.code: tuple[str, str | None] | None = None

    async def redirect(self, authorization_url: str) -> None:
        async with httpx.AsyncClient(follow_redirects=False, timeout=10) as http:
            page = await http.get(authorization_url)
            if page.status_code != 200:
                raise RuntimeError(f"login page: {page.status_code} {page.text}")
            form = {k: html.unescape(v) for k, v in HIDDEN.findall(page.text)}
            form.update(email=self.email, action="login")
            answer = await http.post(urljoin(authorization_url, "/authorize"), data=form)
            location = answer.headers.get("location")
            if answer.status_code not in (302, 303) or not location:
                raise RuntimeError(f"login: {answer.status_code} {answer.text}")
            query = parse_qs(urlparse(location).query)
            self.code = (query["code"][0], query.get("state", [None])[0])

    async def callback(self) -> tuple[str, str | None]:
        if self.code is None:
            raise RuntimeError("no authorization code")
        return self.code


async def run(args: argparse.Namespace) -> dict:
    exchanges: list[dict] = []

    async def record(response: httpx.Response) -> None:
        exchanges.append(
            {
                "method": response.request.method,
                "url": str(response.request.url),
                "status": response.status_code,
                "www_authenticate": response.headers.get("www-authenticate"),
            }
        )

    redirect_uri = args.redirect_uri
    client = OAuthClientInformationFull(
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=[redirect_uri],
        grant_types=["authorization_code"],
        response_types=["code"],
        token_endpoint_auth_method="client_secret_post",
    )
    metadata = OAuthClientMetadata(
        client_name="authledger person test",
        redirect_uris=[redirect_uri],
        grant_types=["authorization_code"],
        response_types=["code"],
        token_endpoint_auth_method="client_secret_post",
    )
    browser = Browser(args.email)
    storage = Storage(client)
    auth = OAuthClientProvider(
        server_url=args.url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    report: dict = {"exchanges": exchanges, "calls": []}
    http = httpx.AsyncClient(auth=auth, timeout=30, event_hooks={"response": [record]})
    async with http:
        async with streamable_http_client(args.url, http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                report["server"] = init.serverInfo.name
                tools = await session.list_tools()
                report["tools"] = sorted(t.name for t in tools.tools)
                report["tool_arguments"] = {
                    t.name: sorted((t.inputSchema.get("properties") or {}).keys())
                    for t in tools.tools
                }
                for name, arguments in args.call or []:
                    result = await session.call_tool(name, json.loads(arguments))
                    text = "".join(getattr(c, "text", "") for c in result.content)
                    report["calls"].append({"tool": name, "is_error": result.isError, "text": text})
    # For the test's own requests with the person's token (e.g. `/mcp` with the header).
    report["access_token"] = storage.tokens.access_token if storage.tokens else None
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the person's MCP URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--call", nargs=2, action="append", metavar=("TOOL", "ARGUMENTS"))
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
