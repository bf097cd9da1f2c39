"""The operator's webhook on the local API server: bad SFTJobs are refused at ``kubectl apply``.

The operator runs under the chart's RBAC (testing/devcluster/operator_install.py); the API server calls its
webhook over real TLS with the CA bundle the operator published. Every case below passes the
CRD's OpenAPI schema, so only the webhook can refuse it (tests/support/specs.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from testing.devcluster.cluster import Cluster
from testing.devcluster.operator_install import (
    OperatorProcess,
    patch_sftjob_spec,
    wait_for_phase,
)
from testing.sftjob_manifests import sftjob_manifest
from tests.support.operator_objects import spec_dict
from tests.support.specs import WEBHOOK_BAD_SPECS, with_changes

DENIED = 'admission webhook "validate.sftjobs.kubesft.io" denied the request'


def manifest(name: str, spec: dict[str, Any], namespace: str) -> str:
    return yaml.safe_dump(sftjob_manifest(name, spec, namespace))


@pytest.mark.parametrize(
    ("case", "spec", "expected"), WEBHOOK_BAD_SPECS, ids=[case[0] for case in WEBHOOK_BAD_SPECS]
)
def test_bad_spec_is_refused_at_apply_with_the_field_named(
    operator: OperatorProcess,
    cluster: Cluster,
    namespace: str,
    case: str,
    spec: dict[str, Any],
    expected: str,
) -> None:
    result = cluster.kubectl("apply", "-f", "-", input=manifest(case, spec, namespace), check=False)
    assert result.returncode != 0, f"{case} was admitted"
    assert DENIED in result.stderr
    assert expected in result.stderr, result.stderr
    assert cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", case, namespace) is None


CEL_REFUSED = {
    "spec.dataset.uri": "must not have empty ('//'), '.' or '..' segments",
    "spec.output.uri": "must not have empty ('//'), '.' or '..' segments",
    "spec.checkpoints.endpointUrl": "must not contain user information",
    "spec.resources.env[0].value": "the name looks like a secret",
}


def test_problems_cel_can_express_are_all_refused_by_the_api_server_in_one_answer(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    """The CRD's CEL rules hold without the webhook; the API server lists every broken rule."""
    spec = with_changes(
        dataset__uri="s3://bucket/data/../train.jsonl",
        output__uri="s3://bucket//out",
        checkpoints__endpointUrl="https://user:hunter2@minio:9000",
        resources={"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "hunter2"}]},
    )
    result = cluster.kubectl("apply", "-f", "-", input=manifest("cel", spec, namespace), check=False)
    assert result.returncode != 0, "the spec was admitted"
    assert DENIED not in result.stderr, "the API server's own rules refuse it before the webhook"
    for field, message in CEL_REFUSED.items():
        assert field in result.stderr and message in result.stderr, (field, result.stderr)
    assert cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", "cel", namespace) is None


def test_name_that_cannot_name_pods_is_refused(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    result = cluster.kubectl(
        "apply", "-f", "-", input=manifest("chat.v2", spec_dict(), namespace), check=False
    )
    assert DENIED in result.stderr
    assert "metadata.name: 'chat.v2' must be a DNS label" in result.stderr


def test_started_job_refuses_spec_changes_but_takes_suspend(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=manifest("held", spec_dict(), namespace))
    wait_for_phase(cluster, namespace, "held", "Pending")
    refused = patch_sftjob_spec(
        cluster, namespace, "held", {"training": {"maxSteps": 80, "learningRate": 0.001}}, check=False
    )
    assert refused.returncode != 0
    # The CRD's transition rule refuses it first, naming the section; the webhook would name the
    # fields (tests/unit/operator/test_webhook.py).
    assert DENIED not in refused.stderr
    assert "spec.training: Invalid value" in refused.stderr, refused.stderr
    assert "cannot change while the job is Pending; the job keeps the spec it started with" in refused.stderr
    patch_sftjob_spec(cluster, namespace, "held", {"runPolicy": {"suspend": True}})
    suspended = wait_for_phase(cluster, namespace, "held", "Suspended")
    assert suspended["spec"]["training"]["maxSteps"] == 40


@pytest.mark.parametrize("validate", ["--validate=strict", "--validate=false"])
def test_a_misspelt_field_is_refused_by_name_even_without_client_validation(
    operator: OperatorProcess, cluster: Cluster, namespace: str, validate: str
) -> None:
    """The CRD keeps undeclared spec fields rather than pruning them, so with --validate=false
    (no strict field validation asked of the API server) the typo still reaches the webhook."""
    spec = with_changes(training__learningRat=0.001)
    result = cluster.kubectl(
        "apply", validate, "-f", "-", input=manifest("typo", spec, namespace), check=False
    )
    assert result.returncode != 0, "the misspelt field was admitted"
    assert DENIED in result.stderr, result.stderr
    assert "spec.training.learningRat: unknown field" in result.stderr, result.stderr
    assert cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", "typo", namespace) is None
