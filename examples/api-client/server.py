#!/usr/bin/env python3
"""A small local notes API for the api-client example.

Serves GET /v1/notes as JSON to requests carrying
`Authorization: Bearer $NOTES_TOKEN`, and 401 otherwise.

    NOTES_TOKEN=... python3 examples/api-client/server.py [PORT]
"""
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = os.environ.get("NOTES_TOKEN", "")
NOTES = [
    {"title": "Pin wasmtime to 48", "tags": ["infra"], "created": "2026-11-02"},
    {"title": "Group commit for run records", "tags": ["perf", "infra"], "created": "2026-11-12"},
    {"title": "Scrub secrets from responses", "tags": ["security"], "created": "2026-11-20"},
    {"title": "Benchmark against bare wasmtime", "tags": ["perf"], "created": "2026-11-18"},
]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if not TOKEN or not hmac.compare_digest(auth, f"Bearer {TOKEN}"):
            self.send_response(401)
            self.end_headers()
            return
        if self.path != "/v1/notes":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(NOTES).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("notes-api: " + fmt % args + "\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8787
    print(f"notes API on http://127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
