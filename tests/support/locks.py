"""An image's requirements.lock checked against pyproject's extra it stands for."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.imports import ROOT


def pins(lock: Path) -> dict[str, Version]:
    """name -> pinned version of every ``name==version`` line."""
    found: dict[str, Version] = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{lock.name}: {line} is not pinned"
            found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def unmet(extra: str, lock: Path) -> list[str]:
    """Requirements of the project and of ``extra`` (for Linux x86_64) the lock misses or pins
    outside their range."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins(lock)
    problems = []
    for text in [*project["dependencies"], *project["optional-dependencies"][extra]]:
        requirement = Requirement(text)
        marker_env = {"sys_platform": "linux", "platform_machine": "x86_64", "python_version": "3.11"}
        if requirement.marker is not None and not requirement.marker.evaluate(marker_env):
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{text} (lock: {version})")
    return problems


def against_installed(lock: Path) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """The locked packages installed here, and those installed at another version than pinned."""
    installed: set[str] = set()
    differing: dict[str, tuple[str, str]] = {}
    for name, pinned in pins(lock).items():
        try:
            version = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        installed.add(name)
        if version.base_version != pinned.base_version:
            differing[name] = (str(pinned), str(version))
    return installed, differing
