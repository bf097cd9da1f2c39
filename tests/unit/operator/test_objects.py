"""Which watched Jobs and Pods belong to an SFTJob: by owner reference, whatever their labels."""

from __future__ import annotations

import copy

from kubesft_operator.objects import controller_uid, owned_jobs, owned_pods
from tests.support.operator_objects import OWNER, job, pod


def test_a_job_is_the_sftjobs_when_the_sftjob_controls_it() -> None:
    own = job(0)
    copied = copy.deepcopy(own)
    copied["metadata"]["ownerReferences"] = [
        {"kind": "SFTJob", "uid": "uid-someone-else", "controller": True}
    ]
    unowned = copy.deepcopy(own)
    del unowned["metadata"]["ownerReferences"]
    assert controller_uid(own, "SFTJob") == OWNER.uid
    assert owned_jobs([own, copied, unowned], OWNER.uid) == [own]


def test_a_pod_is_the_sftjobs_when_one_of_its_jobs_controls_it() -> None:
    own = pod(0)
    forged = copy.deepcopy(own)  # the same labels, made by hand
    del forged["metadata"]["ownerReferences"]
    elsewhere = copy.deepcopy(own)
    elsewhere["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": "uid-other-job", "controller": True}]
    assert owned_pods([own, forged, elsewhere], [job(0)]) == [own]
    assert owned_pods([own], []) == []
    assert owned_pods([pod(1)], [job(0), job(1)]) == [pod(1)]
