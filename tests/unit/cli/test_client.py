"""``kubesft.Client`` and ``SFTJob`` against the fake API server: the requests they send and
what they make of the answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesft import Client, SFTJob, SFTJobSpec
from kubesft.errors import ConfigurationError, InvalidError
from tests.unit.cli.fake_api import SFTJOBS, Answer, FakeApi, sftjob, watch_body

JOBS = SFTJOBS.format(ns="team")
SPEC = {
    "model": {"name": "HuggingFaceTB/SmolLM2-135M", "chatTemplate": "chatml"},
    "dataset": {"name": "HuggingFaceTB/smoltalk"},
    "training": {"maxSteps": 100},
    "output": {"uri": "s3://bucket/out"},
}


def running(step: int, loss: float = 2.0, **extra: Any) -> dict[str, Any]:
    return sftjob(phase="Running", progress={"step": step, "totalSteps": 100, "loss": loss}, **extra)


def test_namespace_comes_from_the_argument_the_context_or_default(api: FakeApi, tmp_path: Path) -> None:
    assert Client().namespace == "team"
    assert Client(namespace="prod").namespace == "prod"
    other = tmp_path / "other"
    other.mkdir()
    assert Client(kubeconfig=api.kubeconfig(other, namespace=None)).namespace == "default"
    assert Client().connection.context == "fake"


def test_in_a_pod_the_service_account_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Without a token file the in-cluster loader refuses; the error says both ways failed.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(ConfigurationError, match=r"^no kubeconfig and no in-cluster credentials: "):
        Client()


def test_create_posts_the_fields_that_were_set(api: FakeApi) -> None:
    api.on("POST", JOBS, Answer(201, sftjob()))
    job = SFTJob.from_spec("smol", SPEC, labels={"team": "nlp"})
    created = Client().create(job)
    (request,) = api.requests
    assert request.headers["authorization"] == "Bearer secret-token"
    assert request.body == {
        "apiVersion": "kubesft.io/v1alpha1",
        "kind": "SFTJob",
        "metadata": {"name": "smol", "namespace": "team", "labels": {"team": "nlp"}},
        "spec": {**SPEC, "runPolicy": {}},
    }
    assert created.name == "smol" and created.namespace == "team"
    assert created.spec.model.name == "HuggingFaceTB/SmolLM2-135M"


def test_create_uses_the_jobs_own_namespace(api: FakeApi) -> None:
    api.on("POST", SFTJOBS.format(ns="prod"), Answer(201, sftjob(namespace="prod")))
    Client().create(SFTJob.from_spec("smol", SPEC, namespace="prod"))
    assert api.requests[0].body["metadata"]["namespace"] == "prod"


def test_get_gives_typed_status(api: FakeApi) -> None:
    api.on(
        "GET",
        f"{JOBS}/smol",
        Answer(200, running(40, 1.5, attempt=1, restarts=1, stage="Training", placement="rack-7")),
    )
    job = Client().get("smol")
    assert job.phase == "Running" and job.attempt == 1 and not job.finished
    assert job.status is not None and job.status.progress is not None
    assert (job.status.progress.step, job.status.progress.loss) == (40, 1.5)
    assert job.status is not None and job.status.stage == "Training"
    # A field of a newer operator is kept as it came.
    assert job.extra_status() == {"placement": "rack-7"}
    assert isinstance(job.spec, SFTJobSpec)


def test_list_in_a_namespace_and_in_all(api: FakeApi) -> None:
    listing = {"items": [sftjob("a"), sftjob("b", namespace="prod")], "metadata": {"resourceVersion": "3"}}
    api.on("GET", JOBS, Answer(200, listing))
    api.on("GET", "/apis/kubesft.io/v1alpha1/sftjobs", Answer(200, listing))
    assert [job.name for job in Client().list()] == ["a", "b"]
    assert [job.namespace for job in Client().list(all_namespaces=True)] == ["team", "prod"]


def test_suspend_and_resume_merge_patch_the_run_policy(api: FakeApi) -> None:
    api.on("PATCH", f"{JOBS}/smol", Answer(200, sftjob()))
    Client().suspend("smol")
    Client().resume("smol")
    assert [r.body for r in api.requests] == [
        {"spec": {"runPolicy": {"suspend": True}}},
        {"spec": {"runPolicy": {"suspend": False}}},
    ]
    assert {r.headers["content-type"] for r in api.requests} == {"application/merge-patch+json"}


def test_delete(api: FakeApi) -> None:
    api.on("DELETE", f"{JOBS}/smol", Answer(200, {"kind": "Status", "status": "Success"}))
    Client().delete("smol", namespace="team")
    assert [(r.method, r.path) for r in api.requests] == [("DELETE", f"{JOBS}/smol")]


def test_watch_lists_first_then_follows_from_its_resource_version(api: FakeApi) -> None:
    api.on("GET", JOBS, Answer(200, {"items": [running(1)], "metadata": {"resourceVersion": "10"}}))
    api.on(
        "GET", JOBS, Answer(200, watch_body(("MODIFIED", running(2)), ("DELETED", running(2)))), watch=True
    )
    events = []
    for event in Client().watch("smol", timeout=5):
        progress = event.job.status.progress if event.job.status else None
        events.append((event.type, progress.step if progress else None))
        if event.type == "DELETED":
            break
    assert events == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 2)]
    watch = api.requests[1]
    assert watch.query["resourceVersion"] == ["10"]
    assert watch.query["fieldSelector"] == ["metadata.name=smol"]


def test_wait_calls_back_on_each_change_and_returns_the_finished_job(api: FakeApi) -> None:
    done = sftjob(
        phase="Succeeded",
        progress={"step": 100, "totalSteps": 100, "loss": 1.0},
        conditions=[{"type": "Succeeded", "status": "True", "reason": "Completed", "message": "done"}],
        outputUri="s3://bucket/out",
    )
    api.on("GET", f"{JOBS}/smol", Answer(200, running(10)))
    events = watch_body(("MODIFIED", running(10)), ("MODIFIED", running(20, 1.5)), ("MODIFIED", done))
    api.on("GET", JOBS, Answer(200, events), watch=True)
    seen: list[tuple[str | None, int]] = []
    job = Client().wait(
        "smol",
        timeout=10,
        callback=lambda j: seen.append(
            (j.phase, j.status.progress.step if j.status and j.status.progress else 0)
        ),
    )
    assert job.phase == "Succeeded" and job.status is not None and job.status.output_uri == "s3://bucket/out"
    # The repeated step-10 status (a write that changed nothing shown) is not reported twice.
    assert seen == [("Running", 10), ("Running", 20), ("Succeeded", 100)]


def test_wait_on_a_finished_job_returns_at_once(api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Failed")))
    assert Client().wait("smol").phase == "Failed"
    assert len(api.requests) == 1


def test_a_watch_resumes_after_410_gone_by_listing_again(api: FakeApi) -> None:
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    api.on("GET", f"{JOBS}/smol", Answer(200, running(1)))
    api.on(
        "GET",
        JOBS,
        Answer(200, watch_body(("ERROR", gone))),
        Answer(200, watch_body(("ERROR", gone))),
        Answer(200, watch_body(("MODIFIED", sftjob(phase="Succeeded")))),
        watch=True,
    )
    api.on("GET", JOBS, Answer(200, {"items": [running(5)], "metadata": {"resourceVersion": "50"}}))
    steps: list[int] = []
    job = Client().wait(
        "smol",
        timeout=10,
        callback=lambda j: steps.append(j.status.progress.step if j.status and j.status.progress else -1),
    )
    assert job.phase == "Succeeded"
    assert steps == [1, 5, -1]
    assert api.requests[-1].query["resourceVersion"] == ["50"]


def test_events_oldest_first(api: FakeApi) -> None:
    def event(reason: str, at: str, version: str = "1") -> dict[str, Any]:
        return {
            "metadata": {"name": reason, "namespace": "team", "resourceVersion": version},
            "involvedObject": {"kind": "SFTJob", "name": "smol"},
            "reason": reason,
            "message": f"{reason} happened",
            "type": "Normal",
            "count": 2,
            "lastTimestamp": at,
        }

    items = [
        event("Completed", "2025-01-01T00:05:00Z"),
        event("Training", "2025-01-01T00:00:00Z", "12"),
        event("JobCreated", "2025-01-01T00:00:00Z", "9"),
    ]
    api.on("GET", "/api/v1/namespaces/team/events", Answer(200, {"items": items, "metadata": {}}))
    events = Client().events("smol")
    # Within one second, the order they were written in.
    assert [(e.reason, e.count) for e in events] == [("JobCreated", 2), ("Training", 2), ("Completed", 2)]
    assert api.requests[0].query["fieldSelector"] == ["involvedObject.kind=SFTJob,involvedObject.name=smol"]


def test_sftjob_round_trip_and_its_checks() -> None:
    job = SFTJob.from_spec("smol", SPEC)
    again = SFTJob.from_dict(job.to_dict())
    assert again.to_dict() == job.to_dict()
    assert again.phase is None and again.failure() is None and again.attempt == 0
    with pytest.raises(InvalidError) as invalid:
        SFTJob.from_spec("smol", {**SPEC, "training": {"maxSteps": 0}})
    assert invalid.value.problems == ["spec.training.maxSteps: must be ≥ 1, got 0"]
    assert str(invalid.value) == "invalid SFTJob spec: spec.training.maxSteps: must be ≥ 1, got 0"
    with pytest.raises(InvalidError, match=r"^kind is 'Pod', not SFTJob$"):
        SFTJob.from_dict({"kind": "Pod", "metadata": {"name": "x"}})
    with pytest.raises(InvalidError, match=r"^metadata\.name: required$"):
        SFTJob.from_dict({"kind": "SFTJob", "metadata": {}, "spec": SPEC})


def test_a_failed_jobs_failure_is_its_condition() -> None:
    failed = SFTJob.from_dict(
        sftjob(
            phase="Failed",
            conditions=[
                {"type": "Failed", "status": "True", "reason": "OOMKilled", "message": "out of memory"}
            ],
        )
    )
    assert failed.failure() == "OOMKilled: out of memory"
    assert failed.finished
