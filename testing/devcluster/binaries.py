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


def gofakes3_version() -> str:
    return module_version(BUILD_MODULES / "s3" / "go.mod", "github.com/johannesboyne/gofakes3")


def cache_root() -> Path:
    return Path(os.environ.get("KUBESFT_CACHE", Path.home() / ".cache/kubesft"))


CONTROL_PLANE_BUILD = "`bash hack/install-control-plane.sh` (or `make control-plane`)"


def _cached(key: str, name: str, build: str = CONTROL_PLANE_BUILD) -> Path:
    path = cache_root() / key / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(f"{path} is missing: run {build} first")
    return path


def kubernetes_binary(name: str) -> Path:
    return _cached(f"k8s-{kubernetes_version()}", name)


def etcd_binary() -> Path:
    return _cached(f"etcd-{etcd_version()}", "etcd")


def gofakes3_binary() -> Path:
    """The S3 server the checkpoint read-back benchmarks use; built on its own, the tests need none."""
    return _cached(f"gofakes3-{gofakes3_version()}", "gofakes3", "`bash hack/build-s3-server.sh`")
