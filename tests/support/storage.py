"""moto's S3 server on loopback for the storage and checkpoint tests, with an outage switch.

The server runs in the test process, so its buckets survive ``stop()`` and ``start()``: a test can
take storage away from a trainer for a while and give it back with the data still there.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.storage.s3_store import MULTIPART_THRESHOLD
from testing.devcluster.processes import free_port

ACCESS_KEY_ID = "kubesft-test"
SECRET_ACCESS_KEY = "kubesft-test-secret"
REGION = "us-east-1"


def checkpoint_like_tree(root: Path) -> dict[str, bytes]:
    """A checkpoint-like folder: one file big enough for multipart, nested and empty files."""
    files = {
        "model.safetensors": os.urandom(MULTIPART_THRESHOLD + 3 * 1024 * 1024 + 17),
        "optimizer.pt": os.urandom(300_000),
        "trainer_state.json": b'{"global_step": 4}',
        "rng/rng_state_0.pth": os.urandom(1234),
        "empty.txt": b"",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


class MotoS3:
    """An S3 endpoint on 127.0.0.1 that can be stopped (connections refused) and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        # One line per request from moto's HTTP server would drown the test output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        # moto's stop() leaves the listening socket open, so clients would hang instead of being
        # refused; closing it makes the outage look like a store that went away.
        inner = self._server._server
        if inner is not None:
            inner.server_close()
        self._server = None

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def new_bucket(self) -> str:
        name = f"kubesft-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, uri: str, **values: Any) -> CheckpointSettings:
        return CheckpointSettings(uri=uri, endpoint_url=self.endpoint_url, region=REGION, **values)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """A moto S3 server for the session; the standard AWS_* variables point boto3 at its keys."""
    server = MotoS3()
    server.start()
    saved = {name: os.environ.get(name) for name in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_bucket(moto_s3: MotoS3) -> str:
    """A fresh, empty bucket on the session's moto server."""
    if not moto_s3.running:
        moto_s3.start()
    return moto_s3.new_bucket()
