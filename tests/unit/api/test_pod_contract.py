"""The pod the operator renders is the pod the trainer expects: ports, paths and variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubesft_api import pod_contract
from kubesft_api.sftjob import parse_spec
from kubesft_operator.render import Attempt, Owner, TrainerDefaults, render_job
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.storage.local_store import LocalStore
from kubesft_trainer.storage.objects import open_store
from tests.support.operator_objects import spec_dict

OWNER = Owner(name="chat", namespace="team-a", uid="uid-chat")


def _container(**changes: Any) -> Any:
    raw = {**spec_dict(), **changes}
    job = render_job(OWNER, parse_spec(raw), Attempt(index=0), TrainerDefaults(image="trainer:test"))
    return job["spec"]["template"]["spec"]["containers"][0]


def test_the_trainer_reads_what_the_operator_sets() -> None:
    container = _container(resources={"gpusPerNode": 2})
    literal = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    env = RuntimeEnv.from_environ(literal)
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert env.config_path is not None and str(env.config_path.parent) in mounts
    assert str(env.work_dir) in mounts
    assert env.metrics_port == container["ports"][0]["containerPort"] == pod_contract.TRAINER_METRICS_PORT
    assert (env.job_name, env.namespace, env.nproc_per_node, env.node_rank) == ("chat", "team-a", 2, 0)
    assert env.job_uid == "uid-chat", "the job identity a checkpoint manifest records"
    assert env.grace_seconds == 60.0
    assert container["terminationMessagePath"] == pod_contract.TERMINATION_LOG


def test_a_pvc_uri_opens_where_its_claim_is_mounted() -> None:
    uri = "pvc://shared/runs/chat"
    container = _container(output={"uri": uri})
    claim_mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"].startswith("pvc-")]
    store = open_store(uri, parse_spec(spec_dict()).checkpoints)
    assert isinstance(store, LocalStore)
    assert [str(store.root.parent.parent)] == claim_mounts
    assert store.root == Path(claim_mounts[0], "runs", "chat")
