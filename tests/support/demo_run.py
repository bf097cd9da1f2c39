"""The demo's stages (``run_demo``) as e2e tests run them: a short job under a release of the test's
own, in the test's namespace, with the release uninstalled afterwards so the next test installs
the chart afresh."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from demo.flow import DemoResult, DemoSettings, run_demo
from testing.devcluster.cluster import Cluster
from testing.devcluster.helm import run_helm
from testing.devcluster.s3 import S3Server


def demo_settings(
    release: str,
    namespace: str,
    results_dir: Path,
    *,
    max_steps: int,
    timeout_seconds: float,
    operator_image: str | None = None,
    trainer_image: str | None = None,
) -> DemoSettings:
    """Settings of a short demo run whose operator namespace and S3 prefix are named after
    ``release`` and ``namespace``, so runs in one session keep apart; progress is read every
    second, since the job lasts only seconds."""
    return DemoSettings(
        release=release,
        operator_namespace=f"kubesft-{release}",
        namespace=namespace,
        prefix=f"{release}/{namespace}",
        max_steps=max_steps,
        progress_interval_seconds=1,
        timeout_seconds=timeout_seconds,
        results_dir=results_dir,
        operator_image=operator_image,
        trainer_image=trainer_image,
    )


def run_demo_then_uninstall(
    cluster: Cluster, s3: S3Server, settings: DemoSettings, *, keep: Callable[[], None] | None = None
) -> tuple[DemoResult, list[str]]:
    """``run_demo`` with what it printed; the chart's release is uninstalled however it ended."""
    lines: list[str] = []
    try:
        result = run_demo(cluster, s3, settings, write=lines.append, keep=keep)
    finally:
        run_helm(
            "uninstall",
            settings.release,
            "--namespace",
            settings.operator_namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
            check=False,
        )
    return result, lines
