"""A fake API server and a kubeconfig pointing at it; no real cluster, no real credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubesft.commands import main
from tests.unit.cli.fake_api import FakeApi

SPEC_FLAGS = [
    "--model",
    "HuggingFaceTB/SmolLM2-135M",
    "--dataset",
    "HuggingFaceTB/smoltalk",
    "--output",
    "s3://bucket/out",
]
"""``run`` flags of the smallest valid spec."""


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No kubeconfig, cluster or AWS settings of the machine leak into a test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBESFT_DEBUG",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    return home


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """The fake API server, named by $KUBECONFIG (context ``fake``, namespace ``team``)."""
    fake = FakeApi().start()
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path)))
    try:
        yield fake
    finally:
        fake.stop()


@dataclass
class Outcome:
    code: int
    out: str
    err: str


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("list", "-A")``: the command's exit code, stdout and stderr."""

    def run(*args: str) -> Outcome:
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run
