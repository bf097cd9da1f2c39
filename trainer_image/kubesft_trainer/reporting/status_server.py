"""Rank 0's HTTP endpoint: ``/metrics`` (Prometheus) and ``/progress`` (JSON for the operator)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from kubesft_api.pod_contract import ENV_METRICS_PORT, METRICS_PATH, PROGRESS_PATH
from kubesft_api.progress import ProgressReport
from kubesft_trainer.errors import TrainerError

log = logging.getLogger(__name__)


class StatusServer:
    """Serves the default Prometheus registry and the latest progress report from a daemon thread."""

    def __init__(self, port: int, progress: Callable[[], ProgressReport], host: str = "0.0.0.0") -> None:
        self._progress = progress
        handler = self._handler_class()
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise TrainerError(f"{ENV_METRICS_PORT}: cannot listen on port {port}: {error}") from error
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubesft-status", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        log.info("serving /metrics and /progress on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        progress = self._progress

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == METRICS_PATH:
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                elif path == PROGRESS_PATH:
                    body = progress().model_dump_json(by_alias=True).encode()
                    self._send(200, "application/json", body)
                elif path == "/healthz":
                    self._send(200, "text/plain; charset=utf-8", b"ok\n")
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /progress\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # Scrapes every few seconds would drown the training log.
                pass

        return Handler
