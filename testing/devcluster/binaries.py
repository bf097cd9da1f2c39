"""Where the control-plane binaries live: built once by hack/build-control-plane.sh.

The versions are the ones pinned in hack/control-plane's build modules, so the cluster always
runs what the build script builds.
"""

from __future__ import annotations

import os
from pathlib import Path

BUILD_MODULES = Path(__file__).resolve().parents[2] / "hack" / "control-plane"


class MissingBinaryError(RuntimeError):
    """A binary the local cluster needs is not installed."""


def module_version(go_mod: Path, module: str) -> str:
    """The version ``go_mod`` requires of ``module``, without the leading ``v``."""
    for line in go_mod.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == module and words[1].startswith("v"):
            return words[1][1:]
    raise MissingBinaryError(f"{go_mod} does not require {module}")


def kubernetes_version() -> str:
    return module_version(BUILD_MODULES / "go.mod", "k8s.io/kubernetes")


def etcd_version() -> str:
    return module_version(BUILD_MODULES / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3")


def cache_root() -> Path:
    return Path(os.environ.get("KUBESFT_CACHE", Path.home() / ".cache/kubesft"))


def _cached(key: str, name: str) -> Path:
    path = cache_root() / key / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(
            f"{path} is missing: run `bash hack/install-control-plane.sh` (or `make control-plane`) first"
        )
    return path


def kubernetes_binary(name: str) -> Path:
    return _cached(f"k8s-{kubernetes_version()}", name)


def etcd_binary() -> Path:
    return _cached(f"etcd-{etcd_version()}", "etcd")
