"""The operator image installs only the operator extra: its modules must import without ML libraries."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ML_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "boto3", "matplotlib")
NOT_IN_THE_IMAGE = (*ML_LIBRARIES, "kubernetes")


def test_operator_imports_without_ml_libraries_or_the_kubernetes_client() -> None:
    blocked = ", ".join(repr(name) for name in NOT_IN_THE_IMAGE)
    code = (
        f"import sys\nfor name in ({blocked}):\n    sys.modules[name] = None\n"
        "import kubesft_operator.handlers, kubesft_operator.__main__\n"
        "print('ok')\n"
    )
    env = {"KUBESFT_WEBHOOK_ENABLED": "false", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_operator_extra_has_no_trainer_dependencies() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    operator = " ".join(extras["operator"])
    for name in NOT_IN_THE_IMAGE:
        assert name not in operator
    assert "kopf" in operator


def test_dockerfile_installs_the_operator_extra_and_runs_as_non_root() -> None:
    dockerfile = (ROOT / "operator/Dockerfile").read_text()
    assert "'.[operator]'" in dockerfile
    assert "USER 65532" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "kubesft_operator"]' in dockerfile
