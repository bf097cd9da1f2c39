"""Where the control-plane binaries live: built once by hack/install-control-plane.sh."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

KUBERNETES_VERSION = "1.20.2"


class MissingBinaryError(RuntimeError):
    """A binary the local cluster needs is not installed."""


def cache_root() -> Path:
    return Path(os.environ.get("KUBESFT_CACHE", Path.home() / ".cache/kubesft"))


def kubernetes_binary(name: str) -> Path:
    path = cache_root() / f"k8s-{KUBERNETES_VERSION}" / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(
            f"{path} is missing: run `bash hack/install-control-plane.sh` (or `make control-plane`) first"
        )
    return path


def system_binary(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        raise MissingBinaryError(
            f"`{name}` is not on PATH: run `bash hack/install-control-plane.sh` (or `make control-plane`) first"
        )
    return Path(found)
