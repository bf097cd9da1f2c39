"""The status patch the controller writes: only what changed."""

from __future__ import annotations

from kubesft_api.status import SFTJobStatus
from kubesft_operator.controller import status_patch


def test_status_patch_sends_only_changes_and_nulls_for_dropped_fields() -> None:
    old = {"phase": "Running", "etaText": "3m", "progressText": "1/4 (25%)", "restarts": 0, "kopf": {"x": 1}}
    new = SFTJobStatus(phase="Succeeded", progress_text="1/4 (25%)", restarts=0)
    assert status_patch(old, new) == {"phase": "Succeeded", "etaText": None}
    assert status_patch(new.model_dump(mode="json", by_alias=True, exclude_none=True), new) == {}
