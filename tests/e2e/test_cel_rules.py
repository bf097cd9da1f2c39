"""The CRD's CEL rules on the local API server: the same bad specs are refused at ``kubectl apply``
with the operator's webhook on and with it gone, each naming its field.

The rules are generated from the spec models (crds/sftjob.yaml); tests/unit/api/test_sftjob.py
checks that the models refuse each of these specs at the same field.
"""

from __future__ import annotations

from typing import Any

import yaml

from testing.devcluster.cluster import Cluster
from testing.devcluster.operator_install import OperatorProcess, patch_sftjob_spec, wait_for_phase
from testing.sftjob_manifests import sftjob_manifest
from tests.support.specs import CEL_BAD_SPECS, VALID, WEBHOOK_BAD_SPECS, with_changes

DENIED = 'admission webhook "validate.sftjobs.kubesft.io" denied the request'


def _apply(cluster: Cluster, name: str, spec: dict[str, Any], namespace: str) -> tuple[int, str]:
    manifest = yaml.safe_dump(sftjob_manifest(name, spec, namespace))
    result = cluster.kubectl("apply", "-f", "-", input=manifest, check=False)
    return result.returncode, result.stderr


def _refusals_missed(cluster: Cluster, namespace: str) -> list[str]:
    """Each CEL case applied; what was admitted, refused by the webhook or refused elsewhere."""
    missed = []
    for case, spec, field, message in CEL_BAD_SPECS:
        code, stderr = _apply(cluster, case, spec, namespace)
        if code == 0:
            missed.append(f"{case}: admitted")
        elif DENIED in stderr:
            missed.append(f"{case}: refused by the webhook, not the API server: {stderr}")
        elif f"{field}: Invalid value" not in stderr or message not in stderr:
            missed.append(f"{case}: refused without '{field}' and '{message}': {stderr}")
    return missed


def test_there_are_at_least_twenty_cel_cases() -> None:
    assert len(CEL_BAD_SPECS) >= 20


def test_cel_rules_refuse_each_spec_with_the_webhook_on(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    # The webhook is on: a spec only it refuses is refused by it.
    case, spec, expected = WEBHOOK_BAD_SPECS[-1]
    code, stderr = _apply(cluster, case, spec, namespace)
    assert code != 0 and DENIED in stderr and expected in stderr, stderr
    assert _refusals_missed(cluster, namespace) == []


def test_cel_rules_refuse_each_spec_with_the_webhook_gone(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    # A started job, for the transition rules: the operator moves it to Pending.
    held_spec = {**VALID, "validation": {"enabled": False}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(sftjob_manifest("held", held_spec, namespace)))
    wait_for_phase(cluster, namespace, "held", "Pending")
    operator.kill()
    operator.install.delete_webhook_configurations()
    # The webhook is gone: a spec only it refuses is now admitted.
    case, spec, _ = WEBHOOK_BAD_SPECS[-1]
    code, stderr = _apply(cluster, case, spec, namespace)
    assert code == 0, stderr
    assert _refusals_missed(cluster, namespace) == []
    for case, *_ in CEL_BAD_SPECS:
        assert cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", case, namespace) is None
    # A misspelt field is kept rather than pruned, so the operator still refuses it by name
    # (tests/unit/operator/test_lifecycle.py); the webhook would have refused it at apply.
    typo = yaml.safe_dump(sftjob_manifest("typo", with_changes(training__learningRat=0.001), namespace))
    cluster.kubectl("apply", "--validate=false", "-f", "-", input=typo)
    kept = cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", "typo", namespace)
    assert kept is not None and kept["spec"]["training"]["learningRat"] == 0.001

    # The started job's spec is frozen by the CRD alone, except the fields that may change.
    refused = patch_sftjob_spec(cluster, namespace, "held", {"training": {"maxSteps": 80}}, check=False)
    assert refused.returncode != 0 and DENIED not in refused.stderr
    assert "spec.training: Invalid value" in refused.stderr, refused.stderr
    assert "cannot change while the job is Pending" in refused.stderr
    refused = patch_sftjob_spec(cluster, namespace, "held", {"runPolicy": {"backoffLimit": 5}}, check=False)
    assert "spec.runPolicy.backoffLimit: Invalid value" in refused.stderr, refused.stderr
    patch_sftjob_spec(
        cluster, namespace, "held", {"runPolicy": {"suspend": True, "activeDeadlineSeconds": 600}}
    )
    held = cluster.kube.get("kubesft.io/v1alpha1", "SFTJob", "held", namespace)
    assert held is not None and held["spec"]["training"]["maxSteps"] == VALID["training"]["maxSteps"]
    assert held["spec"]["runPolicy"]["suspend"] is True
