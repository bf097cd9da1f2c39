"""The operator image installs only the operator extra: its modules must import without ML libraries."""

from __future__ import annotations

import shlex
import tomllib

import pytest

from tests.support.imports import ROOT, import_without, imported_modules
from tests.support.locks import against_installed, pins, unmet

ML_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "boto3", "matplotlib")
NOT_IN_THE_IMAGE = (*ML_LIBRARIES, "kubernetes")


def test_operator_imports_without_ml_libraries_or_the_kubernetes_client() -> None:
    env = {"KUBESFT_WEBHOOK_ENABLED": "false", "PATH": "/usr/bin:/bin"}
    result = import_without(["kubesft_operator.handlers", "kubesft_operator.__main__"], NOT_IN_THE_IMAGE, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_no_operator_module_imports_the_trainer() -> None:
    # The image has no kubesft_trainer: an import of it would only fail where it runs.
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "operator").rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] == "kubesft_trainer"
    ]
    assert not found, found


def test_operator_extra_has_no_trainer_dependencies() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    operator = " ".join(extras["operator"])
    for name in NOT_IN_THE_IMAGE:
        assert name not in operator
    assert "kopf" in operator


def test_dockerfile_installs_the_operator_lock_and_runs_as_non_root() -> None:
    dockerfile = (ROOT / "operator/Dockerfile").read_text()
    assert "COPY operator/requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "USER 65532" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "kubesft_operator"]' in dockerfile


def test_operator_lock_pins_every_requirement_of_the_extra_within_its_range() -> None:
    assert unmet("operator", ROOT / "operator/requirements.lock") == []


def test_operator_lock_matches_the_versions_the_tests_run_with() -> None:
    installed, differing = against_installed(ROOT / "operator/requirements.lock")
    assert {"kopf", "aiohttp", "pydantic", "cryptography"} <= installed
    assert differing == {}


def test_operator_lock_has_no_ml_libraries_or_the_kubernetes_client() -> None:
    pinned = pins(ROOT / "operator/requirements.lock")
    assert not set(pinned) & set(NOT_IN_THE_IMAGE)


def test_dockerfile_copies_no_trainer_code() -> None:
    # pip would find and install kubesft_trainer from a copied trainer_image/ (or the whole tree).
    dockerfile = (ROOT / "operator/Dockerfile").read_text()
    sources = [
        source
        for line in dockerfile.splitlines()
        if line.split(maxsplit=1)[:1] in (["COPY"], ["ADD"])
        for source in [word for word in shlex.split(line)[1:] if not word.startswith("--")][:-1]
    ]
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert source.rstrip("/") not in (".", "trainer_image"), source
        assert not source.startswith(("trainer_image/", "./trainer_image")), source


def test_peering_identity_needs_no_user_database_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The image runs as UID 65532 (or any runAsUser), which its /etc/passwd does not list.
    import getpass
    import pwd
    import socket

    from kubesft_operator.__main__ import peering_identity

    def unknown(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME", "POD_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", unknown)
    with pytest.raises(KeyError):
        getpass.getuser()
    first, second = peering_identity(), peering_identity()
    assert first.startswith(socket.gethostname() + "/")
    assert first != second
