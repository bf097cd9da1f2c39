"""A stand-in trainer that serves ``/progress`` the way a hostile or honest image might.

Run as ``python progress_server.py MODE [STEP]`` in a pod (the process node's command override):

- ``honest``: a valid report at step STEP;
- ``redirect``: 302 to ``/real``, which serves a valid report;
- ``huge``: a valid report padded with whitespace to 1 MiB;
- ``slow``: a valid report, one byte every 0.1 s;
- ``silent``: 404 for everything;
- ``exit``: exits 0 at once, as a trainer that finished.

Every request is logged to stdout (``GET /progress``), so a test reads from the pod's log what
the operator asked for.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "honest"
STEP = int(sys.argv[2]) if len(sys.argv) > 2 else 7
PORT = int(os.environ.get("KUBESFT_METRICS_PORT", "9090"))
REPORT = json.dumps({"step": STEP, "totalSteps": 100, "percent": float(STEP), "loss": 1.5}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path}", flush=True)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if MODE == "silent":
            self._send(404, b"{}")
        elif self.path == "/real" or MODE == "honest":
            self._send(200, REPORT)
        elif MODE == "redirect":
            self._send(302, b"", {"Location": "/real"})
        elif MODE == "huge":
            self._send(200, REPORT[:-1] + b" " * (1 << 20) + b"}")
        elif MODE == "slow":
            self.send_response(200)
            self.send_header("Content-Length", str(len(REPORT)))
            self.end_headers()
            for byte in REPORT:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self._send(500, b"{}")


if __name__ == "__main__":
    if MODE == "exit":
        sys.exit(0)
    print(f"serving {MODE} on {PORT}", flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
