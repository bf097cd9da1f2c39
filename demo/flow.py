"""The demo's stages on a running local cluster and S3: inputs, operator, SFTJob, result.

``run_demo`` builds a tiny model and a conversational dataset and puts both in S3, installs the
Helm chart with real helm and runs the operator under the chart's ServiceAccount and RBAC, applies
one SFTJob, prints its printer columns as they change, and reports the phase, the loss and the
output objects. ``demo/__main__.py`` (``make demo``) starts and stops the cluster around it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from demo.watch import watch_until_finished
from testing.devcluster.chart import CHART_DIR
from testing.devcluster.cluster import Cluster
from testing.devcluster.helm import run_helm
from testing.devcluster.operator_install import OperatorInstall, running_operator
from testing.devcluster.s3 import S3Server
from testing.sftjob_manifests import sftjob_manifest as sftjob_manifest_of
from testing.sftjob_manifests import tiny_cpu_spec
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl

Write = Callable[[str], None]


@dataclass(frozen=True)
class DemoSettings:
    release: str = "kubesft"
    operator_namespace: str = "kubesft-system"
    namespace: str = "demo"
    job_name: str = "tiny-chat"
    # Objects go under s3://<bucket>/<prefix>/: model/, data/, checkpoints/, output/.
    prefix: str = "demo"
    max_steps: int = 40
    # The demo's job lasts about a minute, so the operator reads /progress every 3 s, not every 15 s.
    progress_interval_seconds: int = 3
    timeout_seconds: float = 600.0
    # Kept after the demo: the loss curve, summary and model card, and the operator's log.
    results_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "kubesft-demo")
    # Local images (`make images`, e.g. "localhost/kubesft-operator:0.1.0"): the chart points at
    # them, the operator starts from its image and the trainer pods run inside theirs.
    operator_image: str | None = None
    trainer_image: str | None = None


@dataclass(frozen=True)
class DemoResult:
    phase: str
    message: str
    final_loss: float | None
    first_loss: float | None
    output_uri: str
    """Where the model went: weights, tokenizer and model card."""
    loss_curve_uri: str
    output_objects: list[str]


def heading(write: Write, title: str) -> None:
    write("")
    write(f"==> {title}")


@contextlib.contextmanager
def _quiet_output() -> Iterator[None]:
    """Hide the progress bars of the tokenizer trainer (written to the file descriptors) and of
    the model writer (written to sys.stderr)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            with contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def stage_inputs(s3: S3Server, work: Path, prefix: str, write: Write) -> tuple[str, str]:
    """Build the tiny model and dataset locally, upload both; returns their S3 URIs."""
    with _quiet_output():
        model = build_tiny_model(work / "model")
    rows = chat_rows(200)
    data = write_jsonl(work / "data" / "chat.jsonl", rows)
    write("built a 2-layer Llama (hidden size 64) with a byte-level BPE tokenizer, saved like a hub model,")
    write(f"and {len(rows)} conversations in `messages` format (system, user, assistant turns)")
    uploads = [
        *s3.upload_directory(model, f"{prefix}/model"),
        *s3.upload_directory(data.parent, f"{prefix}/data"),
    ]
    for path, key in uploads:
        write(f"  {path.stat().st_size:>9,d}  s3://{s3.bucket}/{key}")
    return s3.uri(f"{prefix}/model"), s3.uri(f"{prefix}/data/chat.jsonl")


def install_chart(cluster: Cluster, settings: DemoSettings, write: Write) -> OperatorInstall:
    """``helm install`` the chart; the operator then runs as its Deployment would."""
    values = {
        "progress.intervalSeconds": str(settings.progress_interval_seconds),
        "leaderElection.peeringName": settings.release,
    }
    for key, image in (("image", settings.operator_image), ("trainerImage", settings.trainer_image)):
        if image:
            repository, _, tag = image.rpartition(":")
            values.update({f"{key}.repository": repository, f"{key}.tag": tag})
    args = [
        "install",
        settings.release,
        str(CHART_DIR),
        "--namespace",
        settings.operator_namespace,
        "--create-namespace",
        "--kubeconfig",
        str(cluster.kubeconfig),
        *(f"--set={key}={value}" for key, value in values.items()),
    ]
    write(f"$ helm {' '.join(a for a in args if a != str(cluster.kubeconfig) and a != '--kubeconfig')}")
    out = run_helm(*args).stdout
    write(textwrap.indent("\n".join(line for line in out.splitlines()[:4] if line.strip()), "  "))
    return OperatorInstall.from_release(
        cluster, release=settings.release, namespace=settings.operator_namespace
    )


def sftjob_manifest(settings: DemoSettings, s3: S3Server) -> dict[str, Any]:
    spec = tiny_cpu_spec(
        s3,
        settings.prefix,
        max_steps=settings.max_steps,
        learning_rate=2.0e-3,
        logging_steps=2,
        eval_steps=20,
        save_steps=20,
        run_policy={"backoffLimit": 1, "terminationGracePeriodSeconds": 30},
    )
    return sftjob_manifest_of(settings.job_name, spec, settings.namespace)


def apply_sftjob(cluster: Cluster, s3: S3Server, manifest: dict[str, Any], write: Write) -> None:
    namespace = manifest["metadata"]["namespace"]
    if cluster.kube.get("v1", "Namespace", namespace) is None:
        cluster.kubectl("create", "namespace", namespace)
    s3.credentials_secret(cluster.kube.api, namespace)
    write(
        f"a Secret {namespace}/s3-credentials holds AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the pods"
    )
    text = yaml.safe_dump(manifest, sort_keys=False)
    write("$ kubectl apply -f - <<EOF")
    write(text.rstrip())
    write("EOF")
    write(cluster.kubectl("apply", "-f", "-", input=text).stdout.rstrip())


def _download(s3: S3Server, key: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.client().download_file(s3.bucket, key, str(target))
    return target


def report_result(s3: S3Server, settings: DemoSettings, job: dict[str, Any], write: Write) -> DemoResult:
    status = job.get("status") or {}
    phase = status.get("phase", "")
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    message = (conditions.get(phase) or {}).get("message", "")
    output_uri = status.get("outputUri") or job["spec"]["output"]["uri"]
    output_prefix = f"{settings.prefix}/output/"
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=output_prefix).get("Contents", [])
    objects = sorted(item["Key"] for item in listing)
    summary: dict[str, Any] = {}
    if f"{output_prefix}training_summary.json" in objects:
        summary_file = _download(
            s3, f"{output_prefix}training_summary.json", settings.results_dir / "training_summary.json"
        )
        summary = json.loads(summary_file.read_text())
    write(f"phase:       {phase}")
    write(f"condition:   {message}")
    final_loss = summary.get("finalTrainLoss", (status.get("progress") or {}).get("loss"))
    first_loss = summary.get("firstTrainLoss")
    if final_loss is not None:
        start = f"{first_loss:.4f} at the first logged step -> " if first_loss is not None else ""
        write(f"train loss:  {start}{final_loss:.4f} at step {summary.get('globalStep', '?')}")
    if summary.get("finalEvalLoss") is not None:
        write(f"eval loss:   {summary['finalEvalLoss']:.4f}")
    write(f"model:       {output_uri}/  (weights, tokenizer with the ChatML template, model card)")
    loss_curve_key = f"{output_prefix}loss_curve.png"
    write(f"loss curve:  s3://{s3.bucket}/{loss_curve_key}")
    write(f"checkpoint:  {status.get('latestCheckpoint', '<none>')}")
    write(f"objects under {output_uri}/:")
    for item in sorted(listing, key=lambda i: str(i["Key"])):
        write(f"  {int(item['Size']):>9,d}  {item['Key'].removeprefix(output_prefix)}")
    for name in ("loss_curve.png", "README.md"):
        if f"{output_prefix}{name}" in objects:
            _download(s3, f"{output_prefix}{name}", settings.results_dir / name)
    write(f"copied the loss curve, model card and summary to {settings.results_dir}/")
    _how_to_look(s3, output_prefix, write)
    return DemoResult(
        phase=phase,
        message=message,
        final_loss=final_loss,
        first_loss=first_loss,
        output_uri=output_uri,
        loss_curve_uri=f"s3://{s3.bucket}/{loss_curve_key}",
        output_objects=objects,
    )


def _how_to_look(s3: S3Server, output_prefix: str, write: Write) -> None:
    env = f"AWS_ACCESS_KEY_ID={s3.access_key_id} AWS_SECRET_ACCESS_KEY={s3.secret_access_key}"
    boto = (
        f"import boto3; s3 = boto3.client('s3', endpoint_url='{s3.endpoint_url}', "
        f"region_name='{s3.region}', aws_access_key_id='{s3.access_key_id}', "
        f"aws_secret_access_key='{s3.secret_access_key}'); "
        f"s3.download_file('{s3.bucket}', '{output_prefix}loss_curve.png', 'loss_curve.png')"
    )
    write("look at them while S3 runs (KEEP=1 keeps it):")
    write(f"  {env} aws --endpoint-url {s3.endpoint_url} s3 ls --recursive s3://{s3.bucket}/{output_prefix}")
    write(f'  .venv/bin/python -c "{boto}"')


def run_demo(
    cluster: Cluster,
    s3: S3Server,
    settings: DemoSettings | None = None,
    *,
    write: Write = print,
    keep: Callable[[], None] | None = None,
) -> DemoResult:
    """Stages 2 to 6 on a running cluster; ``keep`` runs while the operator still runs."""
    settings = settings or DemoSettings()
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubesft-demo-") as work:
        heading(write, "Tiny model and dataset into S3")
        stage_inputs(s3, Path(work), settings.prefix, write)

    heading(write, "Operator: Helm chart, then python -m kubesft_operator under its ServiceAccount")
    install = install_chart(cluster, settings, write)
    log_path = settings.results_dir / "operator.log"
    log_path.unlink(missing_ok=True)
    with running_operator(install, log_path, tie_to_parent=True, image=settings.operator_image):
        write(
            f"operator running as {install.username} (the chart's RBAC), "
            f"admission webhook {install.webhook_configuration!r} published; log {log_path}"
        )

        heading(write, "SFTJob")
        manifest = sftjob_manifest(settings, s3)
        apply_sftjob(cluster, s3, manifest, write)

        heading(write, f"Training: kubectl get sft -n {settings.namespace} -w")
        started = time.monotonic()
        job = watch_until_finished(
            cluster.kube, settings.namespace, settings.job_name, write, settings.timeout_seconds
        )
        write(f"finished in {time.monotonic() - started:.0f}s")

        heading(write, "Result")
        result = report_result(s3, settings, job, write)
        if result.phase != "Succeeded":
            _explain_failure(cluster, settings, log_path, write)
        if keep is not None:
            keep()
    return result


def _explain_failure(cluster: Cluster, settings: DemoSettings, log_path: Path, write: Write) -> None:
    write("events:")
    write(cluster.kube.events(settings.namespace))
    pods = cluster.kube.core.list_namespaced_pod(
        settings.namespace, label_selector=f"kubesft.io/job={settings.job_name}"
    ).items
    for pod in pods:
        log = cluster.node.logs(settings.namespace, pod.metadata.name)
        write(f"last lines of pod {pod.metadata.name}:")
        write(textwrap.indent("\n".join(log.splitlines()[-15:]), "  "))
    write(f"operator log: {log_path}")
