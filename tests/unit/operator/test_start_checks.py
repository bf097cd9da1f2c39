"""The checks before an attempt starts: policy, a verified admission record, the creator's rights."""

from __future__ import annotations

import asyncio
import json

from kubesft_api.sftjob import parse_spec
from kubesft_api.status import SFTJobStatus
from kubesft_operator import names
from kubesft_operator.authorization import Permission
from kubesft_operator.decisions import Decision, Refusal
from kubesft_operator.policy import Policy
from kubesft_operator.records import Creator, Signer, admission_record
from kubesft_operator.start_checks import StartChecks
from tests.support.operator_objects import OWNER, sftjob, spec_dict

SIGNER = Signer(b"s" * 32)
ALICE = Creator("alice", groups=("team-a",))


class Reviews:
    def __init__(self, denied: set[str] | None = None) -> None:
        self.denied = denied or set()
        self.asked: list[tuple[str, str, str | None]] = []

    async def __call__(self, namespace: str, user: Creator, permission: Permission) -> bool:
        self.asked.append((user.username, permission.verb, permission.name))
        return permission.name not in self.denied


def _check(
    checks: StartChecks, spec: dict[str, object], annotations: dict[str, str], **decided: str
) -> Refusal | None:
    body = sftjob(spec, annotations=annotations)
    decision = Decision(status=SFTJobStatus(), annotations=dict(decided))
    return asyncio.run(checks.refusal(body, decision, parse_spec(spec)))


def test_a_recorded_creator_with_every_right_may_start() -> None:
    reviews = Reviews()
    checks = StartChecks(Policy(), reviews, SIGNER, records_required=True)
    spec = spec_dict()
    assert _check(checks, spec, admission_record(SIGNER, OWNER.namespace, spec, ALICE)) is None
    assert ("alice", "get", "s3-credentials") in reviews.asked


def test_the_recorded_creator_decides_not_who_asked_last() -> None:
    checks = StartChecks(Policy(), Reviews(denied={"s3-credentials"}), SIGNER, records_required=True)
    spec = spec_dict()
    refusal = _check(checks, spec, admission_record(SIGNER, OWNER.namespace, spec, ALICE))
    assert refusal is not None and refusal.reason == "Unauthorized"
    assert (
        "spec.checkpoints.credentialsSecret: user 'alice' may not get secrets 's3-credentials'"
        in refusal.message
    )


def test_without_a_record_that_verifies_nothing_starts() -> None:
    reviews = Reviews()
    checks = StartChecks(Policy(), reviews, SIGNER, records_required=True)
    spec = spec_dict()
    record = admission_record(SIGNER, OWNER.namespace, spec, ALICE)
    edited = spec_dict()
    edited["resources"] = {"envFrom": [{"secretRef": {"name": "other-team"}}]}
    for carried, current in (({}, spec), (record, edited)):
        refusal = _check(checks, current, carried)
        assert refusal is not None and refusal.reason == "NotAdmitted"
    assert reviews.asked == []


def test_the_record_is_checked_against_the_spec_the_job_started_with() -> None:
    checks = StartChecks(Policy(), Reviews(), SIGNER, records_required=True)
    applied = spec_dict()
    record = admission_record(SIGNER, OWNER.namespace, applied, ALICE)
    # The current spec was edited past the webhook; the job keeps running the applied one.
    edited = spec_dict()
    edited["training"]["maxSteps"] = 99
    annotations = {**record, names.ANNOTATION_APPLIED_SPEC: json.dumps(applied, sort_keys=True)}
    assert _check(checks, edited, annotations) is None
    # A record about to be written by this very decision counts the same.
    assert _check(checks, edited, record, **{names.ANNOTATION_APPLIED_SPEC: json.dumps(applied)}) is None


def test_policy_is_checked_first_and_without_records() -> None:
    checks = StartChecks(Policy(allowed_images=("ghcr.io/kubesft/*",)), Reviews())
    spec = spec_dict()
    spec["resources"] = {"image": "docker.io/evil:1"}
    refusal = _check(checks, spec, {})
    assert refusal is not None and refusal.reason == "PolicyViolation"
    assert refusal.message.startswith("spec.resources.image: 'docker.io/evil:1' matches no pattern")
    # Records are only required where the webhook writes them and a key signs them.
    assert _check(StartChecks(Policy(), Reviews(), SIGNER, records_required=False), spec_dict(), {}) is None
    assert _check(StartChecks(Policy(), Reviews(), None, records_required=True), spec_dict(), {}) is None
