"""Both images built from their Dockerfiles with ``hack/images.py`` (what ``make images`` runs),
for tests that run containers inside them. Layers are cached in the project's image store, so
only the first build on a machine takes minutes."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from testing.devcluster.image_store import LocalImage, find_image
from tests.support.imports import ROOT

BUILD = ROOT / "hack" / "images.py"


@dataclass(frozen=True)
class BuiltImages:
    operator: LocalImage
    trainer: LocalImage


def _tag(image: str) -> str:
    return subprocess.run(
        [sys.executable, str(BUILD), "tag", image], capture_output=True, text=True, check=True
    ).stdout.strip()


def build_images() -> BuiltImages:
    """Build (or find cached) both images; skip, saying why, where no image tool can run here."""
    tool = subprocess.run([sys.executable, str(BUILD), "tool"], capture_output=True, text=True, check=False)
    if tool.returncode != 0:
        pytest.skip(f"no image tool can run on this machine: {tool.stderr.strip() or tool.stdout.strip()}")
    if tool.stdout.strip() != "buildah":
        pytest.skip(
            f"images build with {tool.stdout.strip()}, but the process node runs containers only from "
            "buildah's store (testing/devcluster/image_store.py)"
        )
    started = time.monotonic()
    built = subprocess.run([sys.executable, str(BUILD), "build"], capture_output=True, text=True, check=False)
    print(f"images: build from the Dockerfiles took {time.monotonic() - started:.0f} s", flush=True)
    for line in built.stdout.splitlines():
        if line.startswith("images:"):
            print(line, flush=True)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    found = {name: find_image(f"localhost/{_tag(name)}") for name in ("operator", "trainer")}
    assert found["operator"] is not None and found["trainer"] is not None, found
    return BuiltImages(operator=found["operator"], trainer=found["trainer"])
