"""Which spec changes a started SFTJob accepts."""

from __future__ import annotations

import copy

from kubesft_operator.spec_changes import immutable_changes
from tests.support.specs import VALID


def test_a_section_the_server_filled_with_its_defaults_is_no_change() -> None:
    # A merge patch of runPolicy.suspend creates the section; the API server then fills in the
    # CRD's defaults for its other fields. Only suspend changed, and suspend may change.
    applied = copy.deepcopy(VALID)
    applied.pop("runPolicy", None)
    current = copy.deepcopy(applied)
    current["runPolicy"] = {"suspend": True, "backoffLimit": 3, "terminationGracePeriodSeconds": 300}
    assert immutable_changes(applied, current) == []


def test_a_changed_default_is_still_a_change() -> None:
    applied = copy.deepcopy(VALID)
    applied.pop("runPolicy", None)
    current = copy.deepcopy(applied)
    current["runPolicy"] = {"backoffLimit": 7}
    assert immutable_changes(applied, current) == ["spec.runPolicy.backoffLimit"]


def test_a_changed_training_field_is_named() -> None:
    current = copy.deepcopy(VALID)
    current["training"] = {**current["training"], "learningRate": 0.5}
    assert immutable_changes(VALID, current) == ["spec.training.learningRate"]
