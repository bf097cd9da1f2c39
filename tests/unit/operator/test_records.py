"""The signed records on an SFTJob: only the key's holder makes them, and a change breaks them."""

from __future__ import annotations

import copy

import pytest

from kubesft_operator import names
from kubesft_operator.records import (
    ANNOTATION_ADMISSION_SIGNATURE,
    ANNOTATION_ADMITTED_BY,
    ANNOTATION_APPLIED_SPEC_SIGNATURE,
    Creator,
    Signer,
    admission_record,
    admitted_creator,
    applied_record_problem,
    applied_record_verifies,
    applied_signature,
    spec_digest,
)
from tests.support.operator_objects import spec_dict

SIGNER = Signer(b"k" * 32)
ALICE = Creator("alice", "uid-1", ("team-a", "system:authenticated"), (("scopes", ("read",)),))


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(b"short")


def test_the_creator_survives_the_round_trip_through_the_annotation() -> None:
    userinfo = {
        "username": "alice",
        "uid": "uid-1",
        "groups": ["team-a", "system:authenticated"],
        "extra": {"scopes": ["read"]},
    }
    assert Creator.from_userinfo(userinfo) == ALICE
    assert Creator.from_json(ALICE.to_json()) == ALICE
    assert Creator.from_json("not json") is None
    assert Creator.from_json('{"groups": []}') is None


def test_the_mutable_fields_do_not_change_the_digest_and_everything_else_does() -> None:
    spec = spec_dict()
    assert spec_digest(spec) == spec_digest(spec_dict(suspend=True, activeDeadlineSeconds=60))
    changed = copy.deepcopy(spec)
    changed["checkpoints"]["credentialsSecret"]["name"] = "other"
    assert spec_digest(changed) != spec_digest(spec)
    assert spec_digest({"model": {"name": "x"}}) == spec_digest(
        {"model": {"name": "x"}, "runPolicy": {"suspend": True}}
    )
    # A patch that creates runPolicy makes the API server fill in its defaults: the same spec.
    bare = copy.deepcopy(spec)
    del bare["runPolicy"]
    filled = copy.deepcopy(spec)
    filled["runPolicy"] = {"suspend": True, "backoffLimit": 3, "terminationGracePeriodSeconds": 300}
    assert spec_digest(filled) == spec_digest(bare)


def test_an_admission_record_verifies_only_for_its_namespace_and_spec() -> None:
    spec = spec_dict()
    annotations = admission_record(SIGNER, "team-a", spec, ALICE)
    assert admitted_creator(SIGNER, "team-a", spec, annotations) == ALICE
    assert admitted_creator(SIGNER, "team-a", spec_dict(suspend=True), annotations) == ALICE
    assert admitted_creator(SIGNER, "team-b", spec, annotations) is None
    other = copy.deepcopy(spec)
    other["resources"] = {"envFrom": [{"secretRef": {"name": "other-team"}}]}
    assert admitted_creator(SIGNER, "team-a", other, annotations) is None
    assert admitted_creator(Signer(b"x" * 32), "team-a", spec, annotations) is None
    forged = {**annotations, ANNOTATION_ADMITTED_BY: Creator("admin", groups=("system:masters",)).to_json()}
    assert admitted_creator(SIGNER, "team-a", spec, forged) is None
    assert admitted_creator(SIGNER, "team-a", spec, {ANNOTATION_ADMITTED_BY: ALICE.to_json()}) is None
    assert admitted_creator(SIGNER, "team-a", spec, {}) is None
    assert set(annotations) == {ANNOTATION_ADMITTED_BY, ANNOTATION_ADMISSION_SIGNATURE}


def test_the_applied_spec_record_is_bound_to_the_sftjob() -> None:
    applied = '{"training": {"maxSteps": 40}}'
    annotations = {
        names.ANNOTATION_APPLIED_SPEC: applied,
        ANNOTATION_APPLIED_SPEC_SIGNATURE: applied_signature(SIGNER, "uid-chat", applied),
    }
    assert applied_record_verifies(SIGNER, "uid-chat", annotations)
    assert not applied_record_verifies(SIGNER, "uid-other", annotations)
    edited = {**annotations, names.ANNOTATION_APPLIED_SPEC: '{"training": {"maxSteps": 99}}'}
    assert not applied_record_verifies(SIGNER, "uid-chat", edited)
    assert applied_record_problem(SIGNER, "uid-chat", annotations, started=True) is None
    assert applied_record_problem(SIGNER, "uid-chat", {}, started=False) is None
    for broken in (edited, {}, {names.ANNOTATION_APPLIED_SPEC: applied}):
        problem = applied_record_problem(SIGNER, "uid-chat", broken, started=True)
        assert problem is not None and "changed or removed outside the operator" in problem
