"""Both images install the SFTJob contract package: it imports with neither image's libraries."""

from __future__ import annotations

from tests.support.imports import ROOT, import_without, package_modules

TRAINER_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "boto3", "matplotlib")
OPERATOR_LIBRARIES = ("kopf", "aiohttp", "kubernetes", "cryptography", "pydantic_settings")


def test_every_api_module_imports_without_the_trainer_or_operator_libraries() -> None:
    modules = package_modules(ROOT / "api" / "kubesft_api")
    assert "kubesft_api.sftjob" in modules
    result = import_without(modules, (*TRAINER_LIBRARIES, *OPERATOR_LIBRARIES, "prometheus_client"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
