"""What the client shares with the operator without importing it: the pod labels and container
name it finds trainer pods by; and what the cli extra must not need: torch, TRL or kopf."""

from __future__ import annotations

from kubesft import pods
from kubesft_api.pod_contract import CONTAINER_NAME
from kubesft_operator.render import Attempt, render_job
from tests.support.imports import ROOT, import_without, package_modules
from tests.support.operator_objects import BASE_SPEC, DEFAULTS, OWNER, parsed

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


def test_the_client_selects_the_pods_the_operator_renders_and_reads_their_trainer() -> None:
    job = render_job(OWNER, parsed(BASE_SPEC), Attempt(index=2), DEFAULTS)
    template = job["spec"]["template"]
    labels = template["metadata"]["labels"]
    for term in pods.selector(OWNER.name, 2).split(","):
        key, value = term.split("=")
        assert labels[key] == value
    assert CONTAINER_NAME in {container["name"] for container in template["spec"]["containers"]}


def test_the_client_imports_without_the_trainer_or_the_operator() -> None:
    modules = package_modules(ROOT / "cli" / "kubesft")
    assert {"kubesft", "kubesft.client", "kubesft.commands", "kubesft.commands.run_flags"} <= set(modules)
    result = import_without([m for m in modules if m != "kubesft.__main__"], HEAVY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
