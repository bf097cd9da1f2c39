"""What the client shares with the operator without importing it: the pod labels and container
name it finds trainer pods by; and what the cli extra must not need: torch, TRL or kopf."""

from __future__ import annotations

from kubesft import pods
from kubesft_operator import names
from tests.support.imports import ROOT, import_without, package_modules

HEAVY = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "kopf",
    "aiohttp",
    "kubesft_operator",
)


def test_pod_labels_are_the_operators() -> None:
    assert pods.LABEL_JOB == names.LABEL_JOB
    assert pods.LABEL_ATTEMPT == names.LABEL_ATTEMPT
    assert pods.ANNOTATION_COMPLETION_INDEX == names.ANNOTATION_COMPLETION_INDEX
    assert pods.CONTAINER == names.CONTAINER_NAME


def test_the_client_imports_without_the_trainer_or_the_operator() -> None:
    modules = package_modules(ROOT / "cli" / "kubesft")
    assert {"kubesft", "kubesft.client", "kubesft.commands", "kubesft.commands.run_flags"} <= set(modules)
    result = import_without([m for m in modules if m != "kubesft.__main__"], HEAVY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
