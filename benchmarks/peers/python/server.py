"""The official MCP Python SDK serving tollgate's four tools (simple equivalents).

Used by benchmarks/run-mcp.sh. Stateless streamable HTTP with JSON answers
(``stateless_http=True, json_response=True``), served by uvicorn. mcp 2.x renamed FastMCP to
``MCPServer``; only its public API is used.

    PORT=8002 python server.py
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from datetime import datetime, timezone

import uvicorn
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

INSTANCE_ID = os.environ.get("INSTANCE_ID") or str(uuid.uuid4())
STARTED = time.monotonic()

FACTS = {
    "app service scaling": "App Service scales out by adding instances behind its front ends; "
    "stateless servers scale best.",
    "deployment slots": "Deployment slots are live apps with their own host names; a swap warms "
    "the target slot first.",
    "semantic caching": "A semantic cache serves a stored answer when a new prompt means the same "
    "as a cached one.",
    "token limits": "A token budget caps the tokens each subscription may spend per minute; over "
    "it the gateway answers 429.",
    "mcp": "MCP (Model Context Protocol) lets a model call tools that a server describes with "
    "JSON schemas.",
}

server = MCPServer("peer-python", log_level="WARNING")


class Whoami(BaseModel):
    instance_id: str
    hostname: str
    pid: int
    uptime_seconds: float
    served_at: str


class Echo(BaseModel):
    message: str
    length: int
    instance_id: str


class Fact(BaseModel):
    found: bool
    topic: str
    fact: str | None = None
    instance_id: str


class Summary(BaseModel):
    summary: str
    sentences: list[str]
    instance_id: str


@server.tool()
def whoami() -> Whoami:
    """Identify the serving instance."""
    return Whoami(
        instance_id=INSTANCE_ID,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        uptime_seconds=time.monotonic() - STARTED,
        served_at=datetime.now(timezone.utc).isoformat(),
    )


@server.tool()
def echo(message: str) -> Echo:
    """Return the message unchanged."""
    return Echo(message=message, length=len(message), instance_id=INSTANCE_ID)


@server.tool()
def lookup_fact(topic: str) -> Fact:
    """Look up a short fact."""
    key = topic.strip().lower()
    fact = FACTS.get(key)
    if fact is None:
        return Fact(found=False, topic=topic, instance_id=INSTANCE_ID)
    return Fact(found=True, topic=key, fact=fact, instance_id=INSTANCE_ID)


@server.tool()
def summarize(text: str | None = None, topic: str | None = None, max_sentences: int = 3) -> Summary:
    """Summarize text or a topic."""
    source = text or FACTS.get((topic or "").strip().lower(), "")
    if not source:
        raise ValueError("Give text or a known topic.")
    sentences = [s.strip() for s in source.replace("!", ".").split(".") if s.strip()]
    sentences = [s + "." for s in sentences[: max(1, max_sentences)]]
    return Summary(summary=" ".join(sentences), sentences=sentences, instance_id=INSTANCE_ID)


@server.custom_route("/health", methods=["GET"])
async def health(_request: Request) -> JSONResponse:
    """Readiness, for the benchmark scripts."""
    return JSONResponse({"status": "healthy"})


app = server.streamable_http_app(stateless_http=True, json_response=True)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8002")),
        log_level="warning",
        access_log=False,
    )
