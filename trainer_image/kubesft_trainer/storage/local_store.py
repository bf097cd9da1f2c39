"""A folder on a local or shared filesystem (an absolute path, ``file://`` or a mounted ``pvc://``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from kubesft_trainer.storage.objects import (
    Downloads,
    Landed,
    MissingObjectError,
    ObjectStore,
    Sizes,
    as_folder,
    files_under,
    local_target,
)


class LocalStore(ObjectStore):
    """A folder as an object store. Files appear under their final name only whole."""

    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self.root = root

    def _path(self, key: str) -> Path:
        return local_target(self.root, key.strip("/")) if key.strip("/") else self.root

    def _write_atomically(self, target: Path, write: Callable[[Path], object]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(handle)
        try:
            write(Path(temporary))
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def upload_file(self, local: Path, key: str) -> int:
        with self._errors("writing", key):
            self._write_atomically(self._path(key), lambda tmp: shutil.copyfile(local, tmp))
            return local.stat().st_size

    def upload_directory(self, local_dir: Path, prefix: str) -> int:
        folder = as_folder(prefix)
        return sum(
            self.upload_file(path, folder + path.relative_to(local_dir).as_posix())
            for path in files_under(local_dir)
        )

    def download_file(self, key: str, local: Path) -> None:
        with self._errors("reading", key):
            source = self._path(key)
            if not source.is_file():
                raise MissingObjectError(self.location(key), key)
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, local)

    def download_files(self, files: Downloads, landed: Landed | None = None, sizes: Sizes = None) -> None:
        for key, local in files:
            self.download_file(key, local)
            if landed is not None:
                landed(key, local)

    def list_keys(self, prefix: str = "") -> list[str]:
        with self._errors("listing", prefix):
            base = self._path(prefix)
            if not base.is_dir():
                return []
            return sorted(
                path.relative_to(self.root).as_posix()
                for path in base.rglob("*")
                if path.is_file() and not path.name.endswith(".part")
            )

    def read_bytes(self, key: str) -> bytes:
        with self._errors("reading", key):
            try:
                return self._path(key).read_bytes()
            except FileNotFoundError:
                raise MissingObjectError(self.location(key), key) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._errors("writing", key):
            self._write_atomically(self._path(key), lambda tmp: tmp.write_bytes(data))

    def exists(self, key: str) -> bool:
        with self._errors("checking", key):
            return self._path(key).is_file()

    def delete_key(self, key: str) -> None:
        with self._errors("deleting", key):
            self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        with self._errors("deleting", prefix):
            target = self._path(prefix)
            if target == self.root:
                for child in self.root.iterdir() if self.root.exists() else []:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
