"""Build, or push, kubesft's two images: ``make images`` and ``REGISTRY=... make push``.

Uses docker when its daemon answers, else podman, else buildah (installed from the distribution's
packages when none of them is there). buildah keeps its layers and build cache in the project's
image store (testing/devcluster/image_store.py, ~/.cache/kubesft/images), so a second build only
redoes the layers whose inputs changed. A base image that cannot be pulled (no registry reachable)
is replaced, under the same name, by a stand-in made from Debian bookworm with mmdebstrap (Python
3.11 and pip), and the build says so; the Dockerfiles are never changed for it.

    python3 hack/images.py build [--only operator|trainer]
    python3 hack/images.py push REGISTRY
    python3 hack/images.py tool
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testing.devcluster.image_store import STAND_INS, STORE, buildah, release_superseded  # noqa: E402

IMAGES = {"operator": ROOT / "operator" / "Dockerfile", "trainer": ROOT / "trainer_image" / "Dockerfile"}
STAND_IN_PACKAGES = "python3,python3-pip,python3-venv,python-is-python3,ca-certificates"
STAND_IN_LABEL = "io.kubesft.stand-in"
PULL_TIMEOUT = 60
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def tag(image: str) -> str:
    return f"kubesft-{image}:{version()}"


def log(message: str) -> None:
    print(f"images: {message}", flush=True)


def _works(args: list[str]) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def tool() -> str:
    """docker if its daemon answers, podman, buildah; buildah is installed when none is present."""
    if shutil.which("docker") and _works(["docker", "info"]):
        return "docker"
    if shutil.which("podman") and _works(["podman", "info"]):
        return "podman"
    if not shutil.which("buildah"):
        if not shutil.which("apt-get"):
            raise SystemExit("images: no docker, podman or buildah, and no apt-get to install buildah")
        log("no working docker or podman: installing buildah from the distribution's packages")
        _apt_install("buildah", "mmdebstrap")
    elif not shutil.which("mmdebstrap") and shutil.which("apt-get"):
        # Only needed for a stand-in base, but installed now: later the build may run beside other apt users.
        _apt_install("mmdebstrap")
    return "buildah"


def _apt_install(*packages: str) -> None:
    subprocess.run(
        ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=600"], check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "-o",
            "DPkg::Lock::Timeout=600",
            "--no-install-recommends",
            *packages,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def command(name: str, *args: str) -> list[str]:
    return buildah(*args) if name == "buildah" else [name, *args]


def bases() -> list[str]:
    """The FROM images of both Dockerfiles."""
    found = []
    for dockerfile in IMAGES.values():
        for line in dockerfile.read_text().splitlines():
            if line.split(maxsplit=1)[:1] == ["FROM"]:
                found.append(line.split()[1])
    return sorted(set(found))


def ensure_base(name: str, base: str) -> None:
    """Have ``base`` locally: already there, pulled, or (no registry reachable) a stand-in."""
    inspect = ["inspect", "--type", "image"] if name == "buildah" else ["image", "inspect"]
    found = subprocess.run(command(name, *inspect, base), capture_output=True, text=True, check=False)
    if found.returncode == 0:
        if STAND_IN_LABEL in found.stdout:
            log(f"base {base} is the Debian bookworm stand-in made earlier (no registry was reachable)")
        return
    try:
        pulled = (
            subprocess.run(command(name, "pull", base), timeout=PULL_TIMEOUT, check=False).returncode == 0
        )
    except subprocess.TimeoutExpired:
        pulled = False
    if pulled:
        return
    log(
        f"cannot pull {base}: making a stand-in under that name from Debian bookworm (mmdebstrap, Python 3.11, pip)"
    )
    make_stand_in(name, base)


STAND_IN_CONFIG = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


def make_stand_in(name: str, base: str) -> None:
    if not shutil.which("mmdebstrap"):
        _apt_install("mmdebstrap")
    hooks = [
        # As in the official Python images: pip installs into the image's Python, and `pip` exists.
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        'ln -sf pip3 "$1"/usr/bin/pip',
    ]
    if any(LOCAL_CAS.glob("*.crt")):
        # This machine may reach PyPI through a TLS proxy whose CA only its own trust store has.
        hooks.append(f'cp {HOST_CA_BUNDLE} "$1"{HOST_CA_BUNDLE}')
        log(f"the stand-in trusts this machine's CAs ({HOST_CA_BUNDLE}), as builds here need them")
    # The root filesystem is kept, keyed by what makes it, for the next stand-in.
    recipe = hashlib.sha256(json.dumps([STAND_IN_PACKAGES, hooks]).encode()).hexdigest()[:12]
    tarball = STORE / "stand-in" / f"{base.replace('/', '_').replace(':', '_')}-bookworm-{recipe}.tar"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    if not tarball.exists():
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={STAND_IN_PACKAGES}",
                *(f"--customize-hook={hook}" for hook in hooks),
                "bookworm",
                str(partial),
            ],
            check=True,
        )
        partial.rename(tarball)
    if name != "buildah":
        changes = [f"ENV {key}={value}" for key, value in STAND_IN_CONFIG.items()]
        changes += ['CMD ["python3"]', f"LABEL {STAND_IN_LABEL}=debian-bookworm-mmdebstrap"]
        args = [name, "import", *(f"--change={change}" for change in changes), str(tarball), base]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        log(f"stand-in {base} made (Debian bookworm, Python 3.11, pip): the images are built on it")
        return
    build = buildah
    container = subprocess.run(
        build("from", "scratch"), capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(build("add", container, str(tarball), "/"), check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            build(
                "config",
                *(arg for key, value in STAND_IN_CONFIG.items() for arg in ("--env", f"{key}={value}")),
                "--cmd",
                "python3",
                "--label",
                f"{STAND_IN_LABEL}=debian-bookworm-mmdebstrap",
                container,
            ),
            check=True,
        )
        image_id = subprocess.run(
            build("commit", "--quiet", container, base), capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        with STAND_INS.open("a") as ids:
            ids.write(f"{image_id}\n")
    finally:
        subprocess.run(build("rm", container), check=False, stdout=subprocess.DEVNULL)
    log(
        f"stand-in {base} made (Debian bookworm, Python 3.11, pip): the images are built on it, not on the real {base}"
    )


def build_one(name: str, image: str) -> None:
    dockerfile = str(IMAGES[image].relative_to(ROOT))
    if name == "buildah":
        args = buildah("bud", "--isolation", "chroot", "--layers", "--pull-never")
    elif name == "podman":
        args = ["podman", "build", "--layers", "--pull=missing"]
    else:
        args = ["docker", "build"]
    # buildah keeps RUN --mount=type=cache directories (pip's downloads) under TMPDIR.
    temporary = STORE / "tmp"
    temporary.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(temporary)} if name == "buildah" else None
    subprocess.run([*args, "-f", dockerfile, "-t", tag(image), "."], cwd=ROOT, check=True, env=env)


def build(only: str | None, if_possible: bool = False) -> None:
    try:
        name = tool()
    except SystemExit as err:
        if not if_possible:
            raise
        log(f"not building the images, and the image tests will skip: {err}")
        return
    log(f"building with {name}" + (f", layers in {STORE}" if name == "buildah" else ""))
    started = time.monotonic()
    for base in bases():
        ensure_base(name, base)
    for image in [only] if only else list(IMAGES):
        begun = time.monotonic()
        build_one(name, image)
        log(f"built {tag(image)} in {time.monotonic() - begun:.0f} s")
    log(f"build time: {time.monotonic() - started:.0f} s")
    if name == "buildah":
        for holder in release_superseded():
            log(f"released {holder}, which held an earlier build's files for the local cluster")


def push(registry: str) -> None:
    name = tool()
    for image in IMAGES:
        target = f"{registry.rstrip('/')}/{tag(image)}"
        subprocess.run(command(name, "tag", tag(image), target), check=True)
        subprocess.run(command(name, "push", target), check=True)
        log(f"pushed {target}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    build_parser = sub.add_parser("build")
    build_parser.add_argument("--only", choices=sorted(IMAGES))
    build_parser.add_argument(
        "--if-possible", action="store_true", help="say why and succeed where no image tool can run"
    )
    push_parser = sub.add_parser("push")
    push_parser.add_argument("registry")
    sub.add_parser("tool")
    tag_parser = sub.add_parser("tag")
    tag_parser.add_argument("image", choices=sorted(IMAGES))
    args = parser.parse_args()
    if args.action == "build":
        build(args.only, args.if_possible)
    elif args.action == "push":
        push(args.registry)
    elif args.action == "tag":
        print(tag(args.image))
    else:
        print(tool())


if __name__ == "__main__":
    main()
