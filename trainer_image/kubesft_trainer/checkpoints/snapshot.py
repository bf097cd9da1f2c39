"""Freezes a local checkpoint folder for upload, so the Trainer's own rotation cannot delete it mid-way."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


def snapshot(source: Path, target: Path) -> Path:
    """Hard-link every file of ``source`` into ``target`` (a copy where links are impossible).

    transformers writes each checkpoint file once and rotation removes whole folders, so a hard link
    keeps the bytes of a file alive and unchanged after the Trainer deletes its own copy.
    """
    if target.exists():
        shutil.rmtree(target)
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copy2(path, destination)
    target.mkdir(parents=True, exist_ok=True)
    return target
