"""The child objects of an SFTJob, rendered as plain manifests by pure functions.

Nothing here talks to the API server: the same spec and inputs always give the same objects,
which is what makes applying them idempotent and adopting them after a restart safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from kubesft_api import pod_contract
from kubesft_api.sftjob import GROUP, KIND, VERSION, SFTJobSpec
from kubesft_api.uris import parse_uri
from kubesft_operator import names

TRAINER_COMMAND = ["python", "-m", "kubesft_trainer"]
RUN_AS_USER = 1000
VALIDATION_RESOURCES = {"cpu": "1", "memory": "2Gi"}
"""The validation pod's requests and limits: it tokenizes, it does not train."""
VALIDATION_DEADLINE_SECONDS = 3600


@dataclass(frozen=True)
class Owner:
    """The SFTJob that owns the rendered objects."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class TrainerDefaults:
    """Operator-wide settings that reach the trainer pods."""

    image: str
    image_pull_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """One trainer Job: its number, the restart count so far, and how it starts."""

    index: int
    restarts: int = 0
    suspended: bool = False
    """Create the Job with spec.suspend (Kueue admits it, or the job is suspended)."""
    active_deadline_seconds: int | None = None
    """What is left of runPolicy.activeDeadlineSeconds when this attempt starts."""


def owner_reference(owner: Owner) -> dict[str, Any]:
    """Makes the SFTJob the controller of a child, so deleting it deletes the child (GC)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(owner: Owner, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels or names.child_labels(owner.name),
        "ownerReferences": [owner_reference(owner)],
    }


def trainer_config_yaml(spec: SFTJobSpec) -> str:
    """The trainer's config file: the trainer sections of the spec, camelCase, as YAML."""
    data = spec.trainer_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    # libyaml's emitter (PyYAML's wheels carry it): the same text as safe_dump, about 4x faster.
    return yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=True)


def render_configmap(owner: Owner, spec: SFTJobSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, names.configmap_name(owner.name)),
        "data": {pod_contract.CONFIG_KEY: trainer_config_yaml(spec)},
    }


def needs_service(spec: SFTJobSpec) -> bool:
    """Multi-node jobs need a headless Service so ranks find rank 0 by its DNS name."""
    return spec.resources.nodes > 1


def render_service(owner: Owner) -> dict[str, Any]:
    """Headless Service giving each pod of an Indexed Job the name ``<job>-<index>.<service>``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, names.service_name(owner.name)),
        "spec": {
            "clusterIP": "None",
            # Ranks resolve rank 0 while it starts, before any readiness.
            "publishNotReadyAddresses": True,
            "selector": {names.LABEL_JOB: owner.name},
            "ports": [
                {
                    "name": "rendezvous",
                    "port": pod_contract.RENDEZVOUS_PORT,
                    "targetPort": pod_contract.RENDEZVOUS_PORT,
                }
            ],
        },
    }


def pvc_claims(spec: SFTJobSpec) -> dict[str, bool]:
    """PersistentVolumeClaims named by pvc:// URIs, each mapped to whether it must be writable."""
    claims: dict[str, bool] = {}
    for uri, writable in (
        (spec.model.uri, False),
        *((dataset_uri, False) for dataset_uri in spec.dataset.uris),
        (spec.output.uri, True),
    ):
        parsed = parse_uri(uri) if uri else None
        if parsed is not None and parsed.scheme == "pvc":
            claim = parsed.bucket_or_claim
            claims[claim] = claims.get(claim, False) or writable
    return claims


def _env(owner: Owner, spec: SFTJobSpec, job: str) -> list[dict[str, Any]]:
    resources, policy = spec.resources, spec.run_policy
    indexed = resources.nodes > 1
    rank: dict[str, Any] = (
        {
            "name": pod_contract.ENV_NODE_RANK,
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{names.ANNOTATION_COMPLETION_INDEX}']"}
            },
        }
        if indexed
        else {"name": pod_contract.ENV_NODE_RANK, "value": "0"}
    )
    master = f"{job}-0.{names.service_name(owner.name)}" if indexed else "127.0.0.1"
    env: list[dict[str, Any]] = [
        {"name": pod_contract.ENV_CONFIG, "value": pod_contract.CONFIG_PATH},
        {"name": pod_contract.ENV_METRICS_PORT, "value": str(pod_contract.TRAINER_METRICS_PORT)},
        {"name": pod_contract.ENV_JOB_NAME, "value": owner.name},
        {"name": pod_contract.ENV_NAMESPACE, "value": owner.namespace},
        {"name": pod_contract.ENV_JOB_UID, "value": owner.uid},
        {"name": pod_contract.ENV_WORK_DIR, "value": pod_contract.WORK_DIR},
        {"name": pod_contract.ENV_HF_HOME, "value": pod_contract.HF_HOME},
        # The root filesystem is read-only; libraries that cache under $HOME get the work volume.
        {"name": pod_contract.ENV_HOME, "value": pod_contract.WORK_DIR},
        {"name": pod_contract.ENV_GRACE_SECONDS, "value": str(policy.termination_grace_period_seconds)},
        {"name": pod_contract.ENV_NNODES, "value": str(resources.nodes)},
        {"name": pod_contract.ENV_NPROC_PER_NODE, "value": str(max(resources.gpus_per_node, 1))},
        rank,
        {"name": pod_contract.ENV_MASTER_ADDR, "value": master},
        {"name": pod_contract.ENV_MASTER_PORT, "value": str(pod_contract.RENDEZVOUS_PORT)},
    ]
    credentials = spec.checkpoints.credentials_secret
    if credentials is not None:
        for variable, key in (
            ("AWS_ACCESS_KEY_ID", credentials.access_key_id_key),
            ("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key_key),
            ("AWS_SESSION_TOKEN", credentials.session_token_key),
        ):
            if key is not None:
                env.append(_secret_env(variable, credentials.name, key))
    if spec.model.token_secret is not None:
        env.append(
            _secret_env(pod_contract.ENV_HF_TOKEN, spec.model.token_secret.name, spec.model.token_secret.key)
        )
    mlflow = spec.tracking.mlflow
    if mlflow is not None and mlflow.credentials_secret is not None:
        secret = mlflow.credentials_secret
        for variable, key in (
            ("MLFLOW_TRACKING_USERNAME", secret.username_key),
            ("MLFLOW_TRACKING_PASSWORD", secret.password_key),
            ("MLFLOW_TRACKING_TOKEN", secret.token_key),
        ):
            # Optional: basic auth or a token, whichever the Secret holds.
            entry = _secret_env(variable, secret.name, key)
            entry["valueFrom"]["secretKeyRef"]["optional"] = True
            env.append(entry)
    env += [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in resources.env]
    return env


def _secret_env(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _resources(spec: SFTJobSpec) -> dict[str, Any]:
    res = spec.resources
    amounts: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits = dict(amounts)
    if res.gpus_per_node > 0:
        limits[res.gpu_resource_name] = str(res.gpus_per_node)
    return {"requests": amounts, "limits": limits}


def _volumes(owner: Owner, spec: SFTJobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": names.configmap_name(owner.name)}},
        {"name": "work", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shared_memory}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": pod_contract.CONFIG_DIR, "readOnly": True},
        {"name": "work", "mountPath": pod_contract.WORK_DIR},
        {"name": "tmp", "mountPath": pod_contract.TMP_DIR},
        {"name": "dshm", "mountPath": pod_contract.SHM_DIR},
    ]
    for number, (claim, writable) in enumerate(sorted(pvc_claims(spec).items())):
        volume = f"pvc-{number}"
        volumes.append(
            {"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": not writable}}
        )
        mounts.append(
            {"name": volume, "mountPath": pod_contract.pvc_mount_path(claim), "readOnly": not writable}
        )
    return volumes, mounts


def _pod_spec(owner: Owner, spec: SFTJobSpec, job: str, defaults: TrainerDefaults) -> dict[str, Any]:
    res = spec.resources
    volumes, mounts = _volumes(owner, spec)
    container: dict[str, Any] = {
        "name": names.CONTAINER_NAME,
        "image": res.image or defaults.image,
        "imagePullPolicy": res.image_pull_policy,
        "command": list(TRAINER_COMMAND),
        "env": _env(owner, spec, job),
        "ports": [{"name": "metrics", "containerPort": pod_contract.TRAINER_METRICS_PORT, "protocol": "TCP"}],
        "resources": _resources(spec),
        "volumeMounts": mounts,
        "terminationMessagePath": pod_contract.TERMINATION_LOG,
        # A trainer killed before it could write its reason still leaves its last log lines.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if res.env_from:
        container["envFrom"] = [
            item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in res.env_from
        ]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # Trainer pods never talk to the API server; progress is read from them instead.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.run_policy.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if res.nodes > 1:
        pod["subdomain"] = names.service_name(owner.name)
    if res.node_selector:
        pod["nodeSelector"] = dict(res.node_selector)
    if res.tolerations:
        pod["tolerations"] = list(res.tolerations)
    if res.affinity:
        pod["affinity"] = res.affinity
    if res.priority_class_name:
        pod["priorityClassName"] = res.priority_class_name
    if defaults.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": secret} for secret in defaults.image_pull_secrets]
    return pod


def render_job(owner: Owner, spec: SFTJobSpec, attempt: Attempt, defaults: TrainerDefaults) -> dict[str, Any]:
    """The batch/v1 Job of one attempt; multi-node jobs are Indexed, one pod per node.

    The Job never retries by itself (backoffLimit 0): the operator decides from the trainer's
    exit code whether a failure is worth another attempt, and each attempt resumes from the
    newest checkpoint.
    """
    name = names.job_name(owner.name, attempt.index)
    nodes = spec.resources.nodes
    labels = {**names.child_labels(owner.name), names.LABEL_ATTEMPT: str(attempt.index)}
    job_labels = dict(labels)
    queue = spec.run_policy.queue_name
    if queue:
        job_labels[names.LABEL_KUEUE_QUEUE] = queue
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": nodes,
        "parallelism": nodes,
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {"kubectl.kubernetes.io/default-container": names.CONTAINER_NAME},
            },
            "spec": _pod_spec(owner, spec, name, defaults),
        },
    }
    if nodes > 1:
        job_spec["completionMode"] = "Indexed"
    if attempt.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = max(1, attempt.active_deadline_seconds)
    if attempt.suspended or queue:
        job_spec["suspend"] = True
    metadata = _metadata(owner, name, job_labels)
    metadata["annotations"] = {
        names.ANNOTATION_ATTEMPT: str(attempt.index),
        names.ANNOTATION_RESTARTS: str(attempt.restarts),
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def render_validation_job(
    owner: Owner, spec: SFTJobSpec, digest: str, defaults: TrainerDefaults
) -> dict[str, Any]:
    """The CPU-only Job that runs ``--validate`` before the first trainer Job.

    The trainer's pod with its image, config, credentials and volumes, but no GPU, small
    resources and one pod: it reads the tokenizer, config and data, never the weights.
    """
    name = names.validation_job_name(owner.name, digest)
    labels = {**names.child_labels(owner.name), names.LABEL_STAGE: names.VALIDATION_STAGE}
    pod = _pod_spec(owner, spec, names.job_name(owner.name, 0), defaults)
    container = pod["containers"][0]
    container["command"] = [*TRAINER_COMMAND, "--validate"]
    container["resources"] = {"requests": dict(VALIDATION_RESOURCES), "limits": dict(VALIDATION_RESOURCES)}
    container.pop("ports", None)
    pod.pop("subdomain", None)
    metadata = _metadata(owner, name, labels)
    metadata["annotations"] = {names.ANNOTATION_SPEC_DIGEST: digest}
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        # A job allowed less than the cap in all gets no longer to validate.
        "activeDeadlineSeconds": min(
            VALIDATION_DEADLINE_SECONDS,
            spec.run_policy.active_deadline_seconds or VALIDATION_DEADLINE_SECONDS,
        ),
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {"kubectl.kubernetes.io/default-container": names.CONTAINER_NAME},
            },
            "spec": pod,
        },
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}
