"""``make demo``: one SFTJob from apply to a trained model in S3, on a local cluster.

Starts the local control plane, process node and S3 (testing/devcluster), then runs the stages of
demo/flow.py: a tiny model and dataset into S3, the Helm chart and the operator, an SFTJob
watched like ``kubectl get sft -w``, and the result. Everything stops at the end, also on Ctrl-C
or SIGTERM. ``KEEP=1`` (or ``--keep``) leaves the cluster, S3 and operator up until Ctrl-C and
prints the KUBECONFIG to use meanwhile.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from demo.flow import DemoSettings, heading, run_demo
from kubesft_api import pod_contract
from testing.devcluster.binaries import kubernetes_version
from testing.devcluster.cluster import Cluster
from testing.devcluster.s3 import S3Server

REPO_ROOT = Path(__file__).resolve().parents[1]
# Trainer pods mount volumes here. The process node runs their containers from this checkout's
# virtualenv on the host's filesystem, so a checkout below one of these paths is hidden in pods.
POD_MOUNT_PATHS = (pod_contract.TMP_DIR, pod_contract.WORK_DIR, pod_contract.CONFIG_DIR, pod_contract.SHM_DIR)


def checkout_hidden_in_pods() -> str | None:
    """The pod mount path that hides this checkout from trainer pods, if any."""
    return next((p for p in POD_MOUNT_PATHS if REPO_ROOT.is_relative_to(p)), None)


def say(line: str) -> None:
    print(line, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _tearing_down(signum: int, frame: FrameType | None) -> None:
    say("(tearing down; a moment please)")


def _wait_for_ctrl_c(cluster: Cluster, s3: S3Server) -> None:
    heading(say, "KEEP=1: the cluster, S3 and the operator stay up until Ctrl-C")
    say(f"export KUBECONFIG={cluster.kubeconfig}")
    say("kubectl get sft -A")
    say(f"S3: {s3.endpoint_url} bucket {s3.bucket}")
    say(f"pod logs: {cluster.node.directory}/pods/")
    while True:
        time.sleep(3600)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument(
        "--keep",
        action="store_true",
        default=os.environ.get("KEEP", "") not in ("", "0"),
        help="keep everything up until Ctrl-C (also KEEP=1)",
    )
    parser.add_argument("--steps", type=int, default=DemoSettings.max_steps, help="training steps")
    args = parser.parse_args()
    hidden_by = checkout_hidden_in_pods()
    if hidden_by is not None:
        say(
            f"make demo: this checkout ({REPO_ROOT}) is below {hidden_by}, where trainer pods mount a "
            "volume that hides it from them; clone the repository elsewhere (e.g. under $HOME)"
        )
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    cluster: Cluster | None = None
    succeeded = False
    try:
        heading(
            say,
            f"Local cluster: kube-apiserver + kube-controller-manager {kubernetes_version()}, process node, S3",
        )
        cluster = Cluster.start()
        s3 = cluster.start_s3()
        say(f"control plane up in {cluster.startup_seconds:.1f}s at {cluster.server}")
        say(f"S3 (moto) at {s3.endpoint_url}, bucket {s3.bucket}")
        keep = (lambda: _wait_for_ctrl_c(cluster, s3)) if args.keep and cluster is not None else None
        result = run_demo(cluster, s3, DemoSettings(max_steps=args.steps), write=say, keep=keep)
        succeeded = result.phase == "Succeeded"
    except KeyboardInterrupt:
        say("")
        say("interrupted")
    finally:
        signal.signal(signal.SIGINT, _tearing_down)
        signal.signal(signal.SIGTERM, _tearing_down)
        heading(say, "Teardown")
        if cluster is not None:
            cluster.stop()
            say("stopped the operator, the pods, S3 and the control plane; removed their files")
        say(f"demo took {time.monotonic() - started:.0f}s")
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
