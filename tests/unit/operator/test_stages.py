"""What the trainer is doing, from its /progress to status.stage and the Running condition."""

from __future__ import annotations

from kubesft_api.progress import ProgressReport
from kubesft_operator.crd import build_crd
from kubesft_operator.progress import progress_patch
from tests.support.operator_objects import job, pod, sftjob
from tests.unit.operator.test_lifecycle import applied, condition, run


def test_the_stage_of_the_progress_report_becomes_status_stage() -> None:
    patch = progress_patch({}, ProgressReport(stage="DownloadingModel"))
    assert patch is not None and patch["stage"] == "DownloadingModel"
    later = progress_patch({"progress": patch["progress"]}, ProgressReport(stage="Training", step=3))
    assert later is not None and later["stage"] == "Training"


def test_a_trainer_still_downloading_is_not_shown_as_training() -> None:
    body = sftjob()
    body = applied(body, run(body))
    body["status"]["stage"] = "DownloadingModel"
    decision = run(body, [job(0)], [pod(0)])
    assert decision.status.phase == "Running"
    assert condition(decision, "Running").message == "attempt 0 is downloading the model on 1 node(s)"
    body["status"]["stage"] = "Training"
    assert condition(run(body, [job(0)], [pod(0)]), "Running").message == "attempt 0 is training on 1 node(s)"


def test_a_finished_job_shows_no_stage() -> None:
    body = sftjob()
    body = applied(body, run(body))
    body["status"]["stage"] = "UploadingOutput"
    decision = run(body, [job(0)], [pod(0, "Succeeded", exit_code=0)])
    assert decision.status.phase == "Succeeded" and decision.status.stage is None


def test_kubectl_get_wide_shows_the_stage() -> None:
    columns = build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    stage = next(c for c in columns if c["name"] == "Stage")
    assert stage["jsonPath"] == ".status.stage" and stage["priority"] == 1


def test_a_suspended_job_shows_no_stage() -> None:
    body = sftjob()
    body = applied(body, run(body))
    body["spec"]["runPolicy"]["suspend"] = True
    body["status"]["stage"] = "Training"
    decision = run(body, [job(0, suspend=True)], [])
    assert decision.status.phase == "Suspended" and decision.status.stage is None
