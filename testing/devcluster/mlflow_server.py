"""An MLflow tracking server on this machine (the ``mlflow`` package, sqlite backend), reachable
from the host and from pods, as the S3 server is: it listens on the node bridge's address."""

from __future__ import annotations

import sys
from typing import Any

from testing.devcluster.processes import ManagedProcess, free_port, process_identity, wait_for_http
from testing.devcluster.run_state import RunState


class MlflowServer:
    def __init__(self, state: RunState, host: str) -> None:
        self.state = state
        self.host = host
        self.port = 0
        self.directory = state.directory / "mlflow"
        self._process: ManagedProcess | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 180.0) -> None:
        """Start it and wait until it answers; its first start creates the database (slow)."""
        self.port = free_port(self.host)
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            *(sys.executable, "-m", "mlflow", "server", "--workers", "1"),
            *("--host", self.host, "--port", str(self.port)),
            *("--backend-store-uri", f"sqlite:///{self.directory / 'mlflow.db'}"),
            *("--artifacts-destination", str(self.directory / "artifacts")),
            # Pods name the server by the bridge address, which is not localhost.
            *("--allowed-hosts", f"{self.host},{self.host}:{self.port},localhost"),
        ]
        self._process = ManagedProcess("mlflow", argv, self.directory / "server.log")
        self._process.start()
        identity = process_identity(self._process.pid)
        if identity is not None:
            self.state.remember("pids", list(identity))
        wait_for_http(self._process, self.host, self.port, "/health", timeout)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=5.0)
            identity = process_identity(self._process.pid)
            if identity is not None:
                self.state.forget("pids", list(identity))
            self._process = None

    def client(self) -> Any:
        """An MlflowClient of this server, as a person's notebook would use."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)
