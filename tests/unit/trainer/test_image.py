"""The trainer image installs only the trainer extra: its modules import without the Kubernetes stack."""

from __future__ import annotations

import tomllib

from tests.support.imports import ROOT, import_without
from tests.support.locks import against_installed, pins, unmet

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
    # The operator shares the contract package; the CLI must reach config errors before loading torch,
    # and the resume's checkpoint downloads while torch imports.
    result = import_without(
        [
            "kubesft_api.sftjob",
            "kubesft_trainer.config.file",
            "kubesft_trainer.__main__",
            "kubesft_trainer.checkpoints.manager",
        ],
        TRAINING_LIBRARIES,
    )
    assert result.returncode == 0, result.stderr


def test_trainer_extra_has_no_operator_dependencies() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    trainer = " ".join(extras["trainer"])
    for name in OPERATOR_LIBRARIES:
        assert name not in trainer
    for name in ("torch", "trl", "peft", "prometheus-client", "boto3"):
        assert name in trainer


def test_dockerfile_installs_the_trainer_lock_and_runs_as_the_pods_user() -> None:
    dockerfile = (ROOT / "trainer_image/Dockerfile").read_text()
    assert "COPY trainer_image/requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "USER 1000:1000" in dockerfile
    assert "HF_HOME=/var/lib/kubesft/hf" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "kubesft_trainer"]' in dockerfile
    base = next(line for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert base == "FROM python:3.11-slim"


def test_trainer_lock_pins_every_requirement_of_the_extra_within_its_range() -> None:
    assert unmet("trainer", ROOT / "trainer_image/requirements.lock") == []


def test_trainer_lock_has_cuda_torch_and_liger_and_no_operator_libraries() -> None:
    pinned = pins(ROOT / "trainer_image/requirements.lock")
    assert {"torch", "liger-kernel", "triton", "nvidia-cudnn-cu13", "nvidia-nccl-cu13"} <= set(pinned)
    assert not set(pinned) & set(OPERATOR_LIBRARIES)


def test_trainer_lock_matches_the_versions_the_tests_run_with() -> None:
    # The image is only as tested as these pins; `make venv` installs the test environment under
    # the same lock (liger-kernel and other GPU-only packages aside, which it may lack).
    installed, differing = against_installed(ROOT / "trainer_image/requirements.lock")
    assert {"torch", "transformers", "trl", "peft", "accelerate", "datasets", "pyarrow"} <= installed
    assert differing == {}
