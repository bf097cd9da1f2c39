"""The trainer image installs only the trainer extra: its modules import without the Kubernetes stack."""

from __future__ import annotations

import tomllib

from tests.support.imports import ROOT, import_without

OPERATOR_LIBRARIES = ("kopf", "kubernetes", "aiohttp")
TRAINING_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


def test_trainer_imports_without_the_operator_libraries() -> None:
    result = import_without(
        ["kubesft_trainer.__main__", "kubesft_trainer.train", "kubesft_trainer.reporting.telemetry"],
        OPERATOR_LIBRARIES,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_config_and_cli_entry_import_without_the_training_stack() -> None:
    # The operator shares the contract package; the CLI must reach config errors before loading torch.
    result = import_without(
        ["kubesft_api.sftjob", "kubesft_trainer.config.file", "kubesft_trainer.__main__"], TRAINING_LIBRARIES
    )
    assert result.returncode == 0, result.stderr


def test_trainer_extra_has_no_operator_dependencies() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    trainer = " ".join(extras["trainer"])
    for name in OPERATOR_LIBRARIES:
        assert name not in trainer
    for name in ("torch", "trl", "peft", "prometheus-client", "boto3"):
        assert name in trainer


def test_dockerfile_installs_the_trainer_extra_and_runs_as_the_pods_user() -> None:
    dockerfile = (ROOT / "trainer_image/Dockerfile").read_text()
    assert (
        "'.[trainer]'" in dockerfile
        and "operator" not in dockerfile.split("RUN pip install", 1)[1].split("\n")[0]
    )
    assert "USER 1000:1000" in dockerfile
    assert "HF_HOME=/var/lib/kubesft/hf" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "kubesft_trainer"]' in dockerfile
    base = next(line for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert base.startswith("FROM pytorch/pytorch:") and "cuda" in base
