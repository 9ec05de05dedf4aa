#!/usr/bin/env python3
"""A one-shot recording proxy: forwards every request to an upstream and saves the bodies.

    capture_proxy.py LISTEN_PORT UPSTREAM_BASE OUT_DIR

run-agent.sh puts it between tollgate and the mock model for one agent turn, so the direct
model timings replay exactly the chat requests the agent sends (call-1.json, call-2.json…).
Standard library only; loopback only; stops when killed.
"""

import http.server
import os
import sys
import urllib.request

PORT = int(sys.argv[1])
UPSTREAM = sys.argv[2].rstrip("/")
OUT = sys.argv[3]
os.makedirs(OUT, exist_ok=True)
COUNT = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        global COUNT
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path.endswith("/chat/completions"):
            COUNT += 1
            with open(os.path.join(OUT, f"call-{COUNT}.json"), "wb") as file:
                file.write(body)
        request = urllib.request.Request(
            UPSTREAM + self.path.removeprefix("/v1"),
            data=body,
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            data = answer.read()
            self.send_response(answer.status)
            self.send_header("content-type", answer.headers.get("content-type", "application/json"))
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"proxy"}')

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
