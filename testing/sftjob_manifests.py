"""SFTJob manifests that the demo and the end-to-end tests apply: the object around a spec, and the
tiny CPU run on the local cluster's S3 (a tiny model, chat data, ChatML, assistant-only loss)."""

from __future__ import annotations

from typing import Any

from kubesft_api.sftjob import GROUP, KIND, VERSION
from testing.devcluster.s3 import S3Server


def sftjob_manifest(name: str, spec: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}


def small_fp32_training(steps: int) -> dict[str, Any]:
    """The training section of the end-to-end tests' short runs: small batches and sequences in
    float32, a loss line every step, no activation checkpointing (quick on CPUs)."""
    return {
        "maxSteps": steps,
        "perDeviceBatchSize": 4,
        "learningRate": 1.0e-3,
        "maxLength": 64,
        "loggingSteps": 1,
        "gradientCheckpointing": False,
        "precision": "fp32",
    }


def tiny_cpu_spec(
    s3: S3Server,
    prefix: str,
    *,
    max_steps: int,
    learning_rate: float,
    logging_steps: int,
    eval_steps: int,
    save_steps: int,
    run_policy: dict[str, Any],
) -> dict[str, Any]:
    """The model at ``<prefix>/model``, data at ``<prefix>/data/chat.jsonl``, a tenth held out for
    evaluation; checkpoints and output under ``<prefix>/`` with the s3-credentials Secret."""
    return {
        "model": {"uri": s3.uri(f"{prefix}/model"), "chatTemplate": "chatml"},
        "dataset": {"uri": s3.uri(f"{prefix}/data/chat.jsonl"), "evalFraction": 0.1},
        "training": {
            "maxSteps": max_steps,
            "perDeviceBatchSize": 4,
            "learningRate": learning_rate,
            "maxLength": 128,
            "loggingSteps": logging_steps,
            "evalSteps": eval_steps,
            "assistantOnlyLoss": True,
            "gradientCheckpointing": False,
            "precision": "fp32",
        },
        "checkpoints": {
            "uri": s3.uri(f"{prefix}/checkpoints"),
            "credentialsSecret": {"name": "s3-credentials"},
            "endpointUrl": s3.endpoint_url,
            "saveSteps": save_steps,
            "keep": 2,
        },
        "output": {"uri": s3.uri(f"{prefix}/output")},
        "resources": {"gpusPerNode": 0, "cpu": "1", "memory": "4Gi", "sharedMemory": "256Mi"},
        "runPolicy": run_policy,
    }
