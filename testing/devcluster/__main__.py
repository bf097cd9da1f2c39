"""``python -m devcluster up|down|status``: the local cluster for people (``make cluster-up``).

``up`` starts a background process that owns the cluster (control plane, process node, S3) and
prints the ``export KUBECONFIG=...`` line; ``down`` stops that process, which removes everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testing.devcluster.processes import process_identity, same_process, wait_pids_gone
from testing.devcluster.run_state import runs_root


def _pointer() -> Path:
    return runs_root() / "cluster-up.json"


def _running() -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads(_pointer().read_text())
    except (OSError, ValueError):
        return None
    return info if same_process(tuple(info["owner"])) else None


def _print_access(info: dict[str, Any]) -> None:
    print(f"export KUBECONFIG={info['kubeconfig']}")
    print(f"# Kueue {info['kueueVersion']} runs in namespace kueue-system", file=sys.stderr)
    print(f"# S3 endpoint {info['s3']['endpoint']} bucket {info['s3']['bucket']}", file=sys.stderr)
    print(
        f"# export AWS_ACCESS_KEY_ID={info['s3']['accessKeyId']} AWS_SECRET_ACCESS_KEY={info['s3']['secretAccessKey']}",
        file=sys.stderr,
    )
    print(
        f"# pod logs: {info['nodeDirectory']}/pods/<namespace>_<pod>_<uid>/containers/<container>/<restart>.log",
        file=sys.stderr,
    )


def up(timeout: float) -> int:
    info = _running()
    if info is not None:
        _print_access(info)
        return 0
    root = runs_root()
    root.mkdir(parents=True, exist_ok=True)
    ready = root / f"cluster-up-{os.getpid()}.ready"
    ready.unlink(missing_ok=True)
    log_path = root / "cluster-up.log"
    with open(log_path, "ab") as log:
        owner = subprocess.Popen(
            [sys.executable, "-m", "testing.devcluster", "serve", "--ready-file", str(ready)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])
                ),
            },
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if owner.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            print(f"devcluster: the cluster did not start; log {log_path}:\n{tail}", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.kill(owner.pid, signal.SIGTERM)
            return 1
        time.sleep(0.2)
    info = json.loads(ready.read_text())
    ready.unlink()
    _print_access(info)
    print(f"# up in {info['startupSeconds']:.1f}s; stop with `make cluster-down`", file=sys.stderr)
    return 0


def down() -> int:
    info = _running()
    if info is None:
        print("devcluster: no cluster started by `up` is running", file=sys.stderr)
        _pointer().unlink(missing_ok=True)
        return 0
    pid = int(info["owner"][0])
    os.kill(pid, signal.SIGTERM)
    if wait_pids_gone([pid], 60.0):
        print(f"devcluster: owner {pid} did not stop in 60s; sending SIGKILL", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
    _pointer().unlink(missing_ok=True)
    print("devcluster: stopped")
    return 0


def serve(ready_file: Path) -> int:
    from testing.devcluster.cluster import Cluster

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    cluster = Cluster.start()
    try:
        s3 = cluster.start_s3()
        kueue = cluster.start_kueue()
        identity = process_identity(os.getpid())
        info = {
            "owner": list(identity) if identity else [os.getpid(), 0],
            "kubeconfig": str(cluster.kubeconfig),
            "nodeDirectory": str(cluster.node.directory),
            "startupSeconds": cluster.startup_seconds,
            "kueueVersion": kueue.version,
            "s3": {
                "endpoint": s3.endpoint_url,
                "bucket": s3.bucket,
                "accessKeyId": s3.access_key_id,
                "secretAccessKey": s3.secret_access_key,
            },
        }
        _pointer().write_text(json.dumps(info))
        ready_file.write_text(json.dumps(info))
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        cluster.stop()
        _pointer().unlink(missing_ok=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the cluster in the background and print KUBECONFIG")
    start.add_argument("--timeout", type=float, default=240.0)
    commands.add_parser("down", help="stop the cluster started by `up`")
    owner = commands.add_parser("serve", help="run the cluster in the foreground until SIGTERM")
    owner.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "up":
        return up(args.timeout)
    if args.command == "down":
        return down()
    return serve(args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
