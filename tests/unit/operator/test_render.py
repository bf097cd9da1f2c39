"""The child objects an SFTJob renders to: ConfigMap, Job (plain or Indexed) and Service."""

from __future__ import annotations

from typing import Any

import yaml

from kubesft_api.sftjob import SFTJobSpec, parse_spec
from kubesft_api.trainer_config import TrainerConfig
from kubesft_operator.render import (
    Attempt,
    Owner,
    TrainerDefaults,
    render_configmap,
    render_job,
    render_service,
    trainer_config_yaml,
)
from tests.support.operator_objects import spec_dict

OWNER = Owner(name="chat", namespace="team-a", uid="0f0e-uid")

DEFAULTS = TrainerDefaults(image="registry.example/kubesft-trainer:1.0", image_pull_secrets=("regcred",))


def make_spec(**sections: Any) -> SFTJobSpec:
    raw = spec_dict()
    raw["runPolicy"] = {}
    raw["checkpoints"]["endpointUrl"] = "http://10.0.0.1:9000"
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return parse_spec(raw)


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_configmap_carries_the_trainer_config_camel_case() -> None:
    spec = make_spec()
    cm = render_configmap(OWNER, spec)
    assert cm["metadata"]["name"] == "chat-config"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "0f0e-uid"
    data = yaml.safe_load(cm["data"]["config.yaml"])
    assert data["training"]["maxSteps"] == 40
    assert data["checkpoints"]["credentialsSecret"] == {
        "name": "s3-credentials",
        "accessKeyIdKey": "AWS_ACCESS_KEY_ID",
        "secretAccessKeyKey": "AWS_SECRET_ACCESS_KEY",
    }
    assert "resources" not in data and "runPolicy" not in data
    assert TrainerConfig.model_validate(data) == spec.trainer_config()


def test_single_node_job_contract() -> None:
    spec = make_spec(runPolicy={"terminationGracePeriodSeconds": 120}, resources={"gpusPerNode": 2})
    job = render_job(OWNER, spec, Attempt(index=3, restarts=2), DEFAULTS)
    meta, job_spec = job["metadata"], job["spec"]
    assert meta["name"] == "chat-3"
    assert meta["annotations"] == {"kubesft.io/attempt": "3", "kubesft.io/restarts": "2"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kubesft.io/v1alpha1",
            "kind": "SFTJob",
            "name": "chat",
            "uid": "0f0e-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job_spec["backoffLimit"] == 0
    assert job_spec["completions"] == job_spec["parallelism"] == 1
    assert "completionMode" not in job_spec and "suspend" not in job_spec
    assert "activeDeadlineSeconds" not in job_spec
    pod = job_spec["template"]["spec"]
    labels = job_spec["template"]["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "kubesft",
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/instance": "chat",
        "app.kubernetes.io/managed-by": "kubesft-operator",
        "kubesft.io/job": "chat",
        "kubesft.io/attempt": "3",
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert pod["terminationGracePeriodSeconds"] == 120
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert "subdomain" not in pod
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "kubesft_trainer"]
    assert container["image"] == "registry.example/kubesft-trainer:1.0"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    env = env_of(job)
    assert env["KUBESFT_CONFIG"] == "/etc/kubesft/config.yaml"
    assert env["KUBESFT_METRICS_PORT"] == "9090"
    assert env["KUBESFT_JOB_NAME"] == "chat"
    assert env["KUBESFT_NAMESPACE"] == "team-a"
    assert env["KUBESFT_WORK_DIR"] == "/var/lib/kubesft"
    assert env["HF_HOME"] == "/var/lib/kubesft/hf"
    assert env["KUBESFT_GRACE_SECONDS"] == "120"
    assert env["KUBESFT_NNODES"] == "1"
    assert env["KUBESFT_NPROC_PER_NODE"] == "2"
    assert env["KUBESFT_NODE_RANK"] == "0"
    assert env["MASTER_PORT"] == "29500"
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "s3-credentials", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert "AWS_SESSION_TOKEN" not in env and "HF_TOKEN" not in env
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/etc/kubesft"]["readOnly"] is True
    assert volumes[mounts["/etc/kubesft"]["name"]]["configMap"] == {"name": "chat-config"}
    assert "emptyDir" in volumes[mounts["/var/lib/kubesft"]["name"]]
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}


def test_secrets_only_ever_by_reference() -> None:
    spec = make_spec(
        model={"uri": None, "name": "org/gated-model", "tokenSecret": {"name": "hf", "key": "token"}},
        checkpoints={
            "credentialsSecret": {"name": "aws", "sessionTokenKey": "AWS_SESSION_TOKEN"},
        },
        resources={
            "env": [{"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "k"}}}]
        },
    )
    job = render_job(OWNER, spec, Attempt(index=0), DEFAULTS)
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    secret_names = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HF_TOKEN",
        "WANDB_API_KEY",
    }
    for item in env:
        if item["name"] in secret_names:
            assert "value" not in item
            assert set(item["valueFrom"]) == {"secretKeyRef"}
    by_name = {item["name"]: item for item in env}
    assert by_name["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}
    assert by_name["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "aws"


def test_mlflow_credentials_reach_the_trainer_by_optional_reference() -> None:
    mlflow = {"trackingUri": "http://mlflow:5000", "experiment": "e", "credentialsSecret": {"name": "ml"}}
    env = env_of(render_job(OWNER, make_spec(tracking={"mlflow": mlflow}), Attempt(index=0), DEFAULTS))
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        # A Secret with basic auth only, or a token only: the missing keys stay unset.
        assert env[variable] == {"secretKeyRef": {"name": "ml", "key": variable, "optional": True}}
    assert "MLFLOW_TRACKING_TOKEN" not in env_of(render_job(OWNER, make_spec(), Attempt(index=0), DEFAULTS))


def test_cpu_job_has_no_gpu_limit_and_one_process() -> None:
    job = render_job(
        OWNER, make_spec(resources={"gpusPerNode": 0, "cpu": "2", "memory": "4Gi"}), Attempt(0), DEFAULTS
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert env_of(job)["KUBESFT_NPROC_PER_NODE"] == "1"


def test_multi_node_job_is_indexed_behind_a_headless_service() -> None:
    spec = make_spec(resources={"nodes": 4, "gpusPerNode": 8})
    job = render_job(OWNER, spec, Attempt(index=1), DEFAULTS)
    service = render_service(OWNER)
    job_spec = job["spec"]
    assert job_spec["completionMode"] == "Indexed"
    assert job_spec["completions"] == job_spec["parallelism"] == 4
    assert job_spec["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    env = env_of(job)
    assert env["KUBESFT_NNODES"] == "4"
    assert env["KUBESFT_NPROC_PER_NODE"] == "8"
    assert env["KUBESFT_NODE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    # Indexed Job pods are named <job>-<index>; rank 0 is found through the Service.
    assert env["MASTER_ADDR"] == f"chat-1-0.{service['metadata']['name']}"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"kubesft.io/job": "chat"}
    assert service["metadata"]["ownerReferences"][0]["kind"] == "SFTJob"


def test_kueue_queue_label_and_created_suspended() -> None:
    job = render_job(OWNER, make_spec(runPolicy={"queueName": "gpu-queue"}), Attempt(0), DEFAULTS)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert job["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]


def test_remaining_deadline_goes_on_the_job() -> None:
    spec = make_spec(runPolicy={"activeDeadlineSeconds": 3600})
    job = render_job(OWNER, spec, Attempt(index=1, active_deadline_seconds=1200), DEFAULTS)
    assert job["spec"]["activeDeadlineSeconds"] == 1200


def test_pvc_uris_are_mounted_under_mnt_pvc() -> None:
    spec = make_spec(
        model={"uri": "pvc://models/base"},
        dataset={"uri": "pvc://shared/data.jsonl"},
        output={"uri": "pvc://shared/out"},
    )
    pod = render_job(OWNER, spec, Attempt(0), DEFAULTS)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert mounts["/mnt/pvc/models"]["readOnly"] is True
    assert mounts["/mnt/pvc/shared"]["readOnly"] is False
    assert claims[mounts["/mnt/pvc/models"]["name"]] == {"claimName": "models", "readOnly": True}
    assert claims[mounts["/mnt/pvc/shared"]["name"]] == {"claimName": "shared", "readOnly": False}


def test_every_mixture_source_on_a_pvc_is_mounted_read_only() -> None:
    spec = make_spec(
        dataset={
            "uri": None,
            "mixture": [{"uri": "pvc://chats/a.jsonl"}, {"name": "openai/gsm8k"}, {"uri": "pvc://qa/b"}],
        }
    )
    pod = render_job(OWNER, spec, Attempt(0), DEFAULTS)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/mnt/pvc/chats"]["readOnly"] is True
    assert mounts["/mnt/pvc/qa"]["readOnly"] is True


def test_scheduling_fields_and_image_override_pass_through() -> None:
    spec = make_spec(
        resources={
            "image": "my/trainer:dev",
            "imagePullPolicy": "Always",
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "training",
            "envFrom": [{"configMapRef": {"name": "extra"}}],
        }
    )
    pod = render_job(OWNER, spec, Attempt(0), DEFAULTS)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == ("my/trainer:dev", "Always")
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["tolerations"][0]["key"] == "gpu"
    assert pod["priorityClassName"] == "training"
    assert container["envFrom"] == [{"configMapRef": {"name": "extra"}}]


def test_render_is_pure() -> None:
    spec = make_spec()
    assert render_job(OWNER, spec, Attempt(2, 1), DEFAULTS) == render_job(
        OWNER, spec, Attempt(2, 1), DEFAULTS
    )
    assert trainer_config_yaml(spec) == trainer_config_yaml(make_spec())
