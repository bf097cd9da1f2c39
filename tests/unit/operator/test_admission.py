"""The admission handlers: the record of who set a spec, and refusing what that user may not do."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import kopf
import pytest

from kubesft_operator import names
from kubesft_operator.admission import Admission, record_admission, record_changes, validate_sftjob
from kubesft_operator.authorization import Permission
from kubesft_operator.policy import Policy
from kubesft_operator.records import (
    ANNOTATION_ADMISSION_SIGNATURE,
    ANNOTATION_ADMITTED_BY,
    ANNOTATION_APPLIED_SPEC_SIGNATURE,
    Creator,
    Signer,
    admitted_creator,
    applied_signature,
)
from tests.support.operator_objects import OWNER, sftjob, spec_dict

SIGNER = Signer(b"a" * 32)
ALICE = Creator("alice", groups=("team-a",))
BOB = Creator("bob", groups=("team-a",))
USERINFO = {"username": "alice", "groups": ["team-a"]}


def _body(spec: dict[str, Any] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return cast(dict[str, Any], sftjob(spec or spec_dict(), annotations=dict(annotations or {})))


def _apply(body: dict[str, Any], changes: dict[str, str | None]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for key, value in changes.items():
        if value is None:
            out["metadata"]["annotations"].pop(key, None)
        else:
            out["metadata"]["annotations"][key] = value
    return out


def test_a_create_records_its_user_and_may_bring_no_applied_spec() -> None:
    body = _body(annotations={names.ANNOTATION_APPLIED_SPEC: "{}", ANNOTATION_ADMITTED_BY: BOB.to_json()})
    admitted = _apply(body, record_changes(SIGNER, "CREATE", body, None, ALICE))
    annotations = admitted["metadata"]["annotations"]
    assert names.ANNOTATION_APPLIED_SPEC not in annotations
    assert admitted_creator(SIGNER, OWNER.namespace, admitted["spec"], annotations) == ALICE


def test_an_update_of_the_spec_records_the_new_user_and_any_other_keeps_the_record() -> None:
    created = _body()
    created = _apply(created, record_changes(SIGNER, "CREATE", created, None, ALICE))
    # bob suspends the job and tries to claim it: the record stays alice's.
    suspended = copy.deepcopy(created)
    suspended["spec"]["runPolicy"]["suspend"] = True
    suspended["metadata"]["annotations"][ANNOTATION_ADMITTED_BY] = BOB.to_json()
    kept = _apply(suspended, record_changes(SIGNER, "UPDATE", suspended, created, BOB))
    assert admitted_creator(SIGNER, OWNER.namespace, kept["spec"], kept["metadata"]["annotations"]) == ALICE
    # bob changes the spec: it is now his.
    edited = copy.deepcopy(created)
    edited["spec"]["training"]["maxSteps"] = 99
    his = _apply(edited, record_changes(SIGNER, "UPDATE", edited, created, BOB))
    assert admitted_creator(SIGNER, OWNER.namespace, his["spec"], his["metadata"]["annotations"]) == BOB
    # Removing the record is undone too.
    removed = copy.deepcopy(created)
    del removed["metadata"]["annotations"][ANNOTATION_ADMISSION_SIGNATURE]
    back = _apply(removed, record_changes(SIGNER, "UPDATE", removed, created, BOB))
    assert back["metadata"]["annotations"] == created["metadata"]["annotations"]


def test_the_applied_spec_changes_only_with_the_operators_signature() -> None:
    applied = '{"training": {"maxSteps": 40}}'
    signed = {
        names.ANNOTATION_APPLIED_SPEC: applied,
        ANNOTATION_APPLIED_SPEC_SIGNATURE: applied_signature(SIGNER, OWNER.uid, applied),
    }
    before = _body()
    by_operator = _body(annotations=signed)
    # The operator's own write, signed: kept as it is.
    assert record_changes(SIGNER, "UPDATE", by_operator, before, ALICE) == {}
    started = by_operator
    edited = _body(annotations={**signed, names.ANNOTATION_APPLIED_SPEC: '{"training": {"maxSteps": 99}}'})
    assert record_changes(SIGNER, "UPDATE", edited, started, ALICE) == {
        names.ANNOTATION_APPLIED_SPEC: applied
    }
    removed = _body()
    assert record_changes(SIGNER, "UPDATE", removed, started, ALICE) == signed


class Reviews:
    def __init__(self, denied: set[str | None]) -> None:
        self.denied = denied
        self.asked: list[str] = []

    async def __call__(self, namespace: str, user: Creator, permission: Permission) -> bool:
        self.asked.append(f"{user.username} {permission.verb} {permission.resource} {permission.name}")
        return permission.name not in self.denied


def _problems(
    admission: Admission, operation: str, body: dict[str, Any], old: dict[str, Any] | None = None
) -> list[str]:
    return asyncio.run(admission.problems(operation, body, old, ALICE))


def test_a_create_is_refused_for_what_its_user_may_not_do() -> None:
    reviews = Reviews(denied={"s3-credentials", None})
    problems = _problems(Admission(Policy(), reviews), "CREATE", _body())
    assert [p.split(":")[0] for p in problems] == [
        "the trainer pods the operator creates for the job",
        "spec.checkpoints.credentialsSecret",
    ]
    assert reviews.asked == ["alice create pods None", "alice get secrets s3-credentials"]


def test_an_update_that_leaves_the_spec_asks_nothing() -> None:
    reviews = Reviews(denied={"s3-credentials"})
    old = _body()
    suspended = copy.deepcopy(old)
    suspended["spec"]["runPolicy"]["suspend"] = True
    assert _problems(Admission(Policy(), reviews), "UPDATE", suspended, old) == []
    assert reviews.asked == []


def test_an_invalid_or_forbidden_spec_is_refused_before_asking() -> None:
    reviews = Reviews(denied=set())
    policy = Policy(allowed_priority_classes=())
    body = _body()
    body["spec"]["resources"] = {"priorityClassName": "system-node-critical"}
    (problem,) = _problems(Admission(policy, reviews), "CREATE", body)
    assert problem.startswith("spec.resources.priorityClassName: 'system-node-critical' is not in")
    body["spec"]["training"]["learningRate"] = 3
    assert any(
        p.startswith("spec.training.learningRate")
        for p in _problems(Admission(policy, reviews), "CREATE", body)
    )
    assert reviews.asked == []


def _kopf_body(body: dict[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, body))


def test_the_validating_handler_refuses_with_the_problems() -> None:
    memo = kopf.Memo(admission=Admission(Policy(), Reviews(denied={"s3-credentials"})))
    with pytest.raises(kopf.AdmissionError, match="may not get secrets 's3-credentials'"):
        asyncio.run(
            validate_sftjob(body=_kopf_body(_body()), userinfo=USERINFO, memo=memo, operation="CREATE")
        )
    with pytest.raises(kopf.AdmissionError, match="still starting"):
        asyncio.run(
            validate_sftjob(body=_kopf_body(_body()), userinfo=USERINFO, memo=kopf.Memo(), operation="CREATE")
        )


def test_the_mutating_handler_writes_the_record_into_the_patch() -> None:
    body = _kopf_body(_body())
    patch = kopf.Patch(body=body)
    memo = kopf.Memo(admission=Admission(Policy(), Reviews(set()), SIGNER))
    record_admission(body=body, userinfo=USERINFO, memo=memo, patch=patch, operation="CREATE")
    written = dict(patch["metadata"]["annotations"])
    assert admitted_creator(SIGNER, OWNER.namespace, spec_dict(), written) == ALICE
    unsigned = kopf.Patch(body=body)
    memo = kopf.Memo(admission=Admission(Policy(), Reviews(set())))
    record_admission(body=body, userinfo=USERINFO, memo=memo, patch=unsigned, operation="CREATE")
    assert not unsigned
