"""Starts one container process inside its pod's sandbox, then execs the container command.

Run by the node as ``python -I -S sandbox.py PLAN.json`` (standard library only, so it starts in
milliseconds). Steps: die with the node, join the container's cgroup and the pod's network
namespace, take a private mount and UTS namespace, give the pod its own /dev, bind every volume at
its mountPath, bind the pod's hosts file and termination-message file, then exec. A path that does
not exist on the host gets its mount point in an overlay of the nearest existing directory, so the
host filesystem is never changed.

With an image (plan["image"]), the root is the image's root filesystem under a writable layer of
the container's own: the sandbox mounts it, chroots into it, gives it /proc, /sys and /dev, binds
the volumes inside it, makes it read-only if asked, then takes the container's user before exec.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
START_ERROR_EXIT = 128

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        libc.mount(
            None if source is None else source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(flags),
            None if data is None else data.encode(),
        ),
        f"mount {source} on {target}",
    )


def umount_lazy(target: str) -> None:
    _check(libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


class Sandbox:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.pod_dir = Path(plan["podDir"])
        self.mounted: list[str] = []
        self.overlaid: set[str] = set()
        self.scratch = self.pod_dir / "sandbox-scratch"
        # Opened before any mount: a volume at /tmp may hide the node's files afterwards.
        self.created_paths = os.open(plan["createdPathsFile"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.start_error = os.open(plan["startErrorFile"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def enter_namespaces(self) -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self.plan["parentPid"]:
            sys.exit(START_ERROR_EXIT)
        if self.plan.get("cgroupProcs"):
            Path(self.plan["cgroupProcs"]).write_text(str(os.getpid()))
        if self.plan.get("netns"):
            fd = os.open(self.plan["netns"], os.O_RDONLY)
            _check(libc.setns(fd, CLONE_NEWNET), f"setns {self.plan['netns']}")
            os.close(fd)
        _check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        hostname = self.plan["hostname"].encode()
        _check(libc.sethostname(hostname, len(hostname)), "sethostname")
        self.scratch.mkdir(parents=True, exist_ok=True)
        # Overlay upper layers live on tmpfs: overlayfs refuses an upper dir on another overlay.
        mount("tmpfs", str(self.scratch), "tmpfs", MS_NOSUID, "mode=0700")

    def private_dev(self, host_dev_fd: int | None = None) -> None:
        """A tmpfs /dev holding bind mounts of the host's devices, so files can be added to it.

        In an image the host's /dev is reached through ``host_dev_fd``, opened before the chroot."""
        if host_dev_fd is None:
            host_dev = self.scratch / "host-dev"
            host_dev.mkdir()
            mount("/dev", str(host_dev), None, MS_BIND | MS_REC)
        else:
            host_dev = Path(f"/proc/self/fd/{host_dev_fd}")
        mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "mode=0755")
        for entry in os.scandir(host_dev):
            target = f"/dev/{entry.name}"
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_dir(follow_symlinks=False):
                os.mkdir(target)
                mount(entry.path, target, None, MS_BIND | MS_REC)
            else:
                Path(target).touch()
                mount(entry.path, target, None, MS_BIND)
        if host_dev_fd is None:
            umount_lazy(str(host_dev))
        # Files such as /dev/termination-log are now created in this tmpfs, never on the host.
        self.mounted.append("/dev")

    def _inside_mounted(self, path: str) -> bool:
        return any(path == m or path.startswith(m.rstrip("/") + "/") for m in self.mounted)

    def _overlay(self, directory: str) -> None:
        """Make ``directory`` writable in this namespace only, keeping the mounts below it."""
        if directory in self.overlaid:
            return
        layer = self.scratch / f"overlay-{len(self.overlaid)}"
        upper, work, kept = layer / "upper", layer / "work", layer / "kept"
        for path in (upper, work, kept):
            path.mkdir(parents=True)
        submounts = sorted(
            {
                line.split()[4]
                for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if line.split()[4].startswith(directory.rstrip("/") + "/")
            },
            key=len,
        )
        saved: list[tuple[str, str]] = []
        for number, submount in enumerate(
            s for s in submounts if not any(s.startswith(p + "/") for p in submounts)
        ):
            holder = kept / str(number)
            if os.path.isdir(submount):
                holder.mkdir()
            else:
                holder.touch()
            mount(submount, str(holder), None, MS_BIND | MS_REC)
            saved.append((str(holder), submount))
        mount("overlay", directory, "overlay", 0, f"lowerdir={directory},upperdir={upper},workdir={work}")
        for kept_at, submount in saved:
            mount(kept_at, submount, None, MS_BIND | MS_REC)
        self.overlaid.add(directory)

    def ensure_target(self, target: str, is_dir: bool) -> None:
        if os.path.lexists(target):
            return
        if self.plan.get("image"):
            # The image's root has a writable layer (made read-only only after the mounts).
            self._create(target, is_dir)
            return
        ancestor = os.path.dirname(target.rstrip("/")) or "/"
        while not os.path.exists(ancestor):
            ancestor = os.path.dirname(ancestor) or "/"
        if not self._inside_mounted(ancestor):
            if ancestor == "/":
                # Overlaying / would hide every other mount; record what is made so the node removes it.
                created = Path(target.rstrip("/")).parts[1]
                os.write(self.created_paths, f"/{created}\n".encode())
            else:
                self._overlay(ancestor)
        self._create(target, is_dir)

    @staticmethod
    def _create(target: str, is_dir: bool) -> None:
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            Path(target).touch()

    def bind_all(self, sources: dict[str, int]) -> None:
        mounts = sorted(self.plan["mounts"], key=lambda m: m["target"].rstrip("/").count("/"))
        for spec in mounts:
            target = spec["target"]
            source = f"/proc/self/fd/{sources[spec['source']]}"
            self.ensure_target(target, stat.S_ISDIR(os.fstat(sources[spec["source"]]).st_mode))
            mount(source, target, None, MS_BIND | MS_REC)
            if spec.get("readOnly"):
                mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
            self.mounted.append(target)

    def enter_image(self, image: dict[str, Any]) -> None:
        """Mount the image's root with the container's writable layer and chroot into it."""
        root = image["root"]
        mount(
            "overlay",
            root,
            "overlay",
            0,
            f"lowerdir={image['lower']},upperdir={image['upper']},workdir={image['work']}",
        )
        host_sys = os.open("/sys", os.O_PATH)
        os.chroot(root)
        os.chdir("/")
        for directory in ("/proc", "/sys", "/dev"):
            os.makedirs(directory, exist_ok=True)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        mount(f"/proc/self/fd/{host_sys}", "/sys", None, MS_BIND | MS_REC)
        mount(None, "/sys", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        os.close(host_sys)

    def become_user(self, image: dict[str, Any]) -> None:
        """Make the working directory, seal the root if read-only, then drop to the pod's user."""
        os.makedirs(image["workingDir"], exist_ok=True)
        if image["readOnly"]:
            mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        user = self.plan["user"]
        if user.get("noNewPrivs"):
            _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl no_new_privs")
        os.setgroups(user["groups"])
        os.setgid(user["gid"])
        os.setuid(user["uid"])

    def run(self) -> None:
        self.enter_namespaces()
        # Open every source first: a volume mounted at /tmp would otherwise hide sources below /tmp.
        sources = {spec["source"]: os.open(spec["source"], os.O_PATH) for spec in self.plan["mounts"]}
        image = self.plan.get("image")
        if image:
            host_dev = os.open("/dev", os.O_PATH)
            self.enter_image(image)
            self.private_dev(host_dev)
            os.close(host_dev)
        else:
            self.private_dev()
        self.bind_all(sources)
        for fd in sources.values():
            os.close(fd)
        if image:
            self.become_user(image)
        os.chdir((image or self.plan).get("workingDir") or "/")
        argv = self.plan["argv"]
        os.close(self.created_paths)
        try:
            os.execvpe(argv[0], argv, self.plan["env"])
        except OSError as err:
            raise OSError(err.errno, f"exec {argv[0]}: {err.strerror}") from err

    def report_start_error(self, err: OSError) -> None:
        message = f"failed to start container: {err}"
        os.write(self.start_error, message.encode())
        print(f"devcluster: {message}", file=sys.stderr, flush=True)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    sandbox = Sandbox(plan)
    try:
        sandbox.run()
    except OSError as err:
        # The node reports this as the container's StartError with this message.
        sandbox.report_start_error(err)
        os._exit(START_ERROR_EXIT)


if __name__ == "__main__":
    main()
