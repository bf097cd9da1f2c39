"""Stand-in for the trainer in the scale benchmark: serves /progress for a moment, then exits 0.

The process node runs it instead of ``python -m kubesft_trainer`` for the benchmark's pods, so
the benchmark measures the operator and the control plane, not training. Standard library only,
to start fast and small.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STEPS = 10
STEP_SECONDS = 0.3
_state = {"step": 0}


class _Progress(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/progress":
            self.send_error(404)
            return
        step = _state["step"]
        body = json.dumps(
            {"step": step, "totalSteps": STEPS, "percent": 100.0 * step / STEPS, "loss": 2.0 - step / STEPS}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("KUBESFT_METRICS_PORT", "9090"))), _Progress)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for step in range(1, STEPS + 1):
        time.sleep(STEP_SECONDS)
        _state["step"] = step
    server.shutdown()


if __name__ == "__main__":
    main()
