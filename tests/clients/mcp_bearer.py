"""The official MCP Python SDK's streamable HTTP client, calling tollgate with a bearer token.

usage: mcp_bearer.py MCP_URL  (the access token in MCP_BEARER_TOKEN, never on the command line)

Lists the tools, calls echo, lists and reads the documents, lists and gets a prompt, then tries
a tool the token has no scope for (named in MCP_REFUSED_TOOL, if set). Prints one JSON object;
exits non-zero when any step that should work fails.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def field(model, snake: str, camel: str):
    """A result field under SDK 2.x's snake_case name or 1.x's camelCase one."""
    return getattr(model, snake, None) if hasattr(model, snake) else getattr(model, camel, None)


async def main(url: str, token: str, refused_tool: str | None) -> dict:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                echo = await session.call_tool("echo", {"message": "from python"})
                resources = await session.list_resources()
                first = resources.resources[0]
                document = await session.read_resource(first.uri)
                prompts = await session.list_prompts()
                prompt = await session.get_prompt("explain_scaling", {"audience": "a developer"})
                refused = None
                if refused_tool:
                    try:
                        result = await session.call_tool(refused_tool, {"topic": "mcp"})
                        refused = {"called": True, "is_error": bool(field(result, "is_error", "isError"))}
                    except Exception as error:  # the SDK raises on the 403
                        refused = {"called": False, "error": type(error).__name__, "text": str(error)[:300]}
    return {
        "tools": [tool.name for tool in tools.tools],
        "echo": field(echo, "structured_content", "structuredContent"),
        "echo_is_error": bool(field(echo, "is_error", "isError")),
        "resources": [str(resource.uri) for resource in resources.resources],
        "document_starts": document.contents[0].text[:40],
        "prompts": [p.name for p in prompts.prompts],
        "prompt_messages": len(prompt.messages),
        "refused": refused,
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    outcome = asyncio.run(
        main(sys.argv[1], os.environ["MCP_BEARER_TOKEN"], os.environ.get("MCP_REFUSED_TOOL"))
    )
    print(json.dumps(outcome))
