"""Where ``make images`` keeps images when it builds with buildah, and how the process node reads
them back: an image's config (ENTRYPOINT, CMD, ENV, WORKDIR, USER) and its root filesystem.

Standard library only: ``hack/images.py`` imports it before any virtualenv exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

STORE = Path(
    os.environ.get("KUBESFT_IMAGE_STORE")
    or Path(os.environ.get("KUBESFT_CACHE") or Path.home() / ".cache" / "kubesft") / "images"
)
"""buildah's storage (layers, images, build cache), kept between runs."""
STAND_INS = STORE / "stand-ins"
"""Ids of the bases made here because no registry was reachable, one a line."""
RUNROOT = Path(os.environ.get("KUBESFT_IMAGE_RUNROOT") or "/run/kubesft-images")


HOLDER_PREFIX = "kubesft-rootfs-"


def buildah(*args: str) -> list[str]:
    """A buildah command line on the project's image store."""
    return [
        "buildah",
        "--root",
        str(STORE / "storage"),
        "--runroot",
        str(RUNROOT),
        "--storage-driver",
        "overlay",
        *args,
    ]


def stand_in_ids() -> set[str]:
    try:
        return set(STAND_INS.read_text().split())
    except OSError:
        return set()


def available() -> bool:
    return shutil.which("buildah") is not None and (STORE / "storage").is_dir()


@dataclass(frozen=True)
class LocalImage:
    """An image in the store, with what a container runtime takes from its config."""

    name: str
    image_id: str
    rootfs: Path
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str]
    working_dir: str
    user: str


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)


def find_image(name: str) -> LocalImage | None:
    """The image ``name`` if the store holds it, mounted read-only for containers; else None.

    One working container per image id holds the mount, so every container of that image shares
    one root filesystem; each container writes to its own overlay on top.
    """
    if not name or not available():
        return None
    inspected = _run(buildah("inspect", "--type", "image", name))
    if inspected.returncode != 0:
        return None
    info = json.loads(inspected.stdout)
    image_id: str = info["FromImageID"]
    if image_id in stand_in_ids():
        # A Debian base made for builds is not the image of that name: pods keep the host's Python.
        return None
    config = (info.get("OCIv1") or {}).get("config") or {}
    holder = f"{HOLDER_PREFIX}{image_id[:12]}"
    if _run(buildah("inspect", "--type", "container", holder)).returncode != 0:
        created = _run(buildah("from", "--pull-never", "--name", holder, image_id))
        if created.returncode != 0:
            raise OSError(f"buildah from {name}: {created.stderr.strip()}")
    mounted = _run(buildah("mount", holder))
    if mounted.returncode != 0:
        raise OSError(f"buildah mount {holder}: {mounted.stderr.strip()}")
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    return LocalImage(
        name=name,
        image_id=image_id,
        rootfs=Path(mounted.stdout.strip()),
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        env=env,
        working_dir=config.get("WorkingDir") or "/",
        user=config.get("User") or "",
    )


def release_superseded() -> list[str]:
    """Remove the root-filesystem holders of images no tag names any more (an earlier build of a
    tag), so their layers can be freed. Holders of tagged images stay: pods may run on them."""
    # buildah prints "null", not "[]", when it has none.
    images = json.loads(_run(buildah("images", "--json", "--no-trunc")).stdout or "[]") or []
    tagged = {image["id"].removeprefix("sha256:") for image in images if image.get("names")}
    containers = json.loads(_run(buildah("containers", "--json")).stdout or "[]") or []
    released = []
    for container in containers:
        name = container.get("containername", "")
        if name.startswith(HOLDER_PREFIX) and container.get("imageid") not in tagged:
            _run(buildah("umount", name))
            if _run(buildah("rm", name)).returncode == 0:
                released.append(name)
    return released
