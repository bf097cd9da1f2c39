"""An S3 API on this machine: moto's server, or gofakes3's, reachable from the host and from pods.

It listens on the node bridge's address, which the host owns and every pod can route to, so the
same endpoint URL works in a test and inside an SFTJob's trainer pod. Both servers accept any key
pair; the fixed one here is handed to pods through a real Secret, exactly like AWS credentials.

moto (the default) is what the tests use. It answers a ranged GET by copying the whole object, so
where the cost of reading a checkpoint back is measured (bench/time_to_resume), gofakes3 serves
instead: a Go server that keeps objects in memory and serves a range at the cost of its bytes,
built once from Go modules by hack/build-s3-server.sh.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any, Literal

from kubernetes import client as k8s

from testing.devcluster.binaries import gofakes3_binary
from testing.devcluster.processes import ManagedProcess, free_port, wait_for_http
from testing.devcluster.run_state import RunState

ACCESS_KEY_ID = "kubesft-devcluster"
SECRET_ACCESS_KEY = "kubesft-devcluster-secret"
REGION = "us-east-1"
DEFAULT_BUCKET = "kubesft"
S3Kind = Literal["moto", "gofakes3"]


class S3Server:
    def __init__(
        self, state: RunState, host: str, bucket: str = DEFAULT_BUCKET, kind: S3Kind = "moto"
    ) -> None:
        self.state = state
        self.host = host
        self.kind = kind
        self.port = 0
        self.bucket = bucket
        self.access_key_id = ACCESS_KEY_ID
        self.secret_access_key = SECRET_ACCESS_KEY
        self.region = REGION
        self._process: ManagedProcess | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def uri(self, prefix: str = "") -> str:
        """``s3://<bucket>/<prefix>``."""
        return f"s3://{self.bucket}/{prefix.lstrip('/')}"

    def start(self, timeout: float = 60.0) -> None:
        self.port = free_port(self.host)
        if self.kind == "moto":
            command = [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                self.host,
                "-p",
                str(self.port),
            ]
            ready = "/moto-api/"
        else:
            # -quiet: it logs every request otherwise. The bucket listing answers 200 once it serves.
            address = f"{self.host}:{self.port}"
            command = [str(gofakes3_binary()), "-backend", "memory", "-host", address, "-quiet"]
            ready = "/"
        self._process = ManagedProcess(self.kind, command, self.state.directory / "s3" / f"{self.kind}.log")
        self._process.start()
        self.state.remember_process(self._process.pid)
        wait_for_http(self._process, self.host, self.port, ready, timeout)
        self.client().create_bucket(Bucket=self.bucket)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=3.0)
            self.state.forget_process(self._process.pid)
            self._process = None

    def client(self) -> Any:
        """A boto3 S3 client for this server, configured like the trainer configures its own."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def upload_directory(self, directory: Path, prefix: str) -> list[tuple[Path, str]]:
        """Every file under ``directory`` to ``prefix/<its relative path>`` in the bucket, in path
        order; returns the (file, key) pairs."""
        client = self.client()
        uploads = [
            (p, f"{prefix}/{p.relative_to(directory)}") for p in sorted(directory.rglob("*")) if p.is_file()
        ]
        for path, key in uploads:
            client.upload_file(str(path), self.bucket, key)
        return uploads

    def env(self) -> dict[str, str]:
        """The standard AWS variables for a process on the host."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def credentials_secret(self, api: k8s.ApiClient, namespace: str, name: str = "s3-credentials") -> str:
        """Create (or replace) a Secret with keys AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""
        core = k8s.CoreV1Api(api)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "data": {
                "AWS_ACCESS_KEY_ID": base64.b64encode(self.access_key_id.encode()).decode(),
                "AWS_SECRET_ACCESS_KEY": base64.b64encode(self.secret_access_key.encode()).decode(),
            },
        }
        try:
            core.create_namespaced_secret(namespace, body, _preload_content=False)
        except k8s.ApiException as err:
            if err.status != 409:
                raise
            core.replace_namespaced_secret(name, namespace, body, _preload_content=False)
        return name
