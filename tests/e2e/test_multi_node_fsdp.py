"""A two-node FSDP SFTJob end to end: ``training.sharding: fsdp`` over an Indexed Job, CPU ranks
over gloo, one process per pod, so every checkpoint has a shard on each node.

The pods' work directories are separate, as on two machines: rank 1's shards reach storage only
through its own upload, and rank 0's manifest lists them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from testing.devcluster.cluster import Cluster
from testing.devcluster.s3 import S3Server
from tests.e2e.test_sftjob_lifecycle import E2E, running_e2e

NAMESPACE = "kubesft-e2e-fsdp"
NAME = "two-nodes-fsdp"
STEPS = 8


@pytest.fixture(scope="module")
def finished(cluster: Cluster, s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    with running_e2e(cluster, s3, tmp_path_factory.mktemp("fsdp"), NAMESPACE) as run:
        body = run.spec(NAME, steps=STEPS, save_steps=4)
        body["spec"]["resources"]["nodes"] = 2
        body["spec"]["training"]["sharding"] = "fsdp"
        run.apply(body)
        run.wait(NAME, "Succeeded", "Failed")
        yield run


def test_a_two_node_fsdp_job_succeeds_with_each_nodes_shard_in_every_checkpoint(finished: E2E) -> None:
    status = finished.status(NAME)
    assert status["phase"] == "Succeeded", yaml.safe_dump(status)
    assert status["progress"]["step"] == STEPS
    pods = {
        pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]: pod
        for pod in finished.pods(NAME)
    }
    assert sorted(pods) == ["0", "1"]
    logs = {rank: finished.trainer_log(pod) for rank, pod in pods.items()}
    assert "FSDP: sharding LlamaDecoderLayer blocks" in logs["0"], logs["0"][-3000:]
    assert "uploaded this node's" in logs["1"], logs["1"][-3000:]

    manifests = finished.checkpoints(NAME).complete()
    assert sorted(manifest.step for manifest in manifests) == [4, 8]
    for manifest in manifests:
        listed = {item.path for item in manifest.files}
        for rank in (0, 1):
            assert f"pytorch_model_fsdp_0/__{rank}_0.distcp" in listed, sorted(listed)
            assert f"optimizer_0/__{rank}_0.distcp" in listed
            assert f"rng_state_{rank}.pth" in listed
    assert finished.summary(NAME)["worldSize"] == 2
    assert "model.safetensors" in finished.output_keys(NAME)
