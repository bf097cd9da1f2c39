"""The SFTJob state machine: from what exists in the cluster to the status and what to do next.

``decide`` is pure. It reads the SFTJob, the Jobs and Pods it owns and the clock (a ``World``), and
returns the status to write, the actions to take and the events to record (a ``Decision``; both
types are in ``decisions``). It is level-triggered: the same world always gives the same decision,
so running it again after a crash, a restart of the operator or a lost event repeats nothing.

Each attempt is one batch/v1 Job with ``backoffLimit: 0``, named ``<sftjob>-<attempt>``. The
operator, not the Job controller, decides about retries, because only the trainer's exit code
says whether another attempt can succeed, and every attempt resumes from the newest checkpoint.
"""

from __future__ import annotations

import json
from typing import Literal

from kubesft_api.pod_contract import RETENTION_REGRESSED
from kubesft_api.sftjob import SFTJobSpec
from kubesft_api.status import ConditionType, Phase, SFTJobStatus
from kubesft_api.times import rfc3339
from kubesft_operator import names, records, spec_changes, validation_gate
from kubesft_operator.attempts import AttemptState, Failure, observe_attempt
from kubesft_operator.conditions import drop_condition, get_condition, headline, set_condition
from kubesft_operator.deadlines import deadline_message, job_deadline_change, overdue, seconds_left, ttl_left
from kubesft_operator.decisions import (
    Decision,
    DeleteJob,
    DeleteSFTJob,
    EnsureChildren,
    Note,
    SuspendJob,
    World,
)
from kubesft_operator.objects import Job, attempt_of, is_deleting, pod_attempt, restarts_of
from kubesft_operator.progress import STAGE_TEXT, finished_progress, progress_text
from kubesft_operator.queueing import admitted_message, evicted_conditions, look_at_queue
from kubesft_operator.render import Attempt

ANNOTATION_REFUSED_GENERATION = "kubesft.io/refused-generation"
TERMINAL: frozenset[Phase] = frozenset({"Succeeded", "Failed"})
RESTART_ON_EDIT = frozenset({"InvalidSpec", "PolicyViolation", "Unauthorized", "NotAdmitted"})
"""Failures an edit of the spec can mend: the job starts over once its spec changes."""
QUIET_REASONS = frozenset({"PodStarting"})
"""Headline reasons too routine to record as events."""
WARNING_REASONS = frozenset(
    {"Preempted", "Killed", "TrainerError", "PodFailed", "Unschedulable"}
    | {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
    | {"CreateContainerConfigError", "CreateContainerError"}
)


class _Machine:
    """One run of the state machine; ``decide`` is its only entry point."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.job = world.sftjob
        self.old = SFTJobStatus.model_validate(self.job.status)
        # A second validation, not model_copy(deep=True): copy.deepcopy costs ten times more, and
        # this runs on every reconcile.
        self.new = SFTJobStatus.model_validate(self.job.status)
        self.now = rfc3339(world.now)
        self.decision = Decision(status=self.new)

    # -- outcomes -------------------------------------------------------------------------

    def _condition(
        self,
        kind: ConditionType,
        status: Literal["True", "False", "Unknown"],
        reason: str,
        message: str,
    ) -> None:
        self.new.conditions = set_condition(self.new.conditions, kind, status, reason, message, self.now)

    def _fail(self, reason: str, message: str, job: Job | None = None) -> None:
        self.new.phase = "Failed"
        self.new.completion_time = self.new.completion_time or self.now
        self._condition("Failed", "True", reason, message)
        self._condition("Running", "False", reason, "the job failed; see the Failed condition")
        if job is not None and not is_deleting(job):
            self.decision.actions.append(DeleteJob(job["metadata"]["name"]))
        self._ttl()

    def _succeed(self, spec: SFTJobSpec, state: AttemptState) -> None:
        self.new.phase = "Succeeded"
        self.new.completion_time = state.finished_at or self.now
        self.new.output_uri = spec.output.uri
        self.new.start_time = self.new.start_time or state.started_at
        if self.new.progress is not None:
            done = finished_progress(self.new.progress.model_dump(mode="json", by_alias=True))
            self.new.progress = type(self.new.progress).model_validate(done)
            self.new.progress_text = progress_text(self.new.progress)
            self.new.eta_text = None
        steps = f" after {self.new.progress.step} steps" if self.new.progress else ""
        self._condition(
            "Succeeded", "True", "Completed", f"training finished{steps}; model written to {spec.output.uri}"
        )
        self._condition("Running", "False", "Completed", "training finished")
        if state.retention_warning is not None:
            self._condition(RETENTION_REGRESSED, "True", RETENTION_REGRESSED, state.retention_warning)
            self.decision.events.append(Note("Warning", RETENTION_REGRESSED, state.retention_warning))
        self._ttl()

    def _ttl(self) -> None:
        ttl = (self.job.spec.get("runPolicy") or {}).get("ttlSecondsAfterFinished")
        left = ttl_left(None if ttl is None else int(ttl), self.new.completion_time, self.world.now)
        if left is not None and left <= 0:
            self.decision.actions.append(DeleteSFTJob())
        elif left is not None:
            self.decision.requeue_after = left

    # -- the machine ------------------------------------------------------------------------

    def run(self) -> Decision:
        if self.job.deleting:
            return self.decision
        if self.old.phase in TERMINAL:
            if not self._invalid_spec_edited():
                self._ttl()
                return self._finish()
            self.new = self.decision.status = SFTJobStatus()
        spec = self._spec()
        if spec is not None:
            self._reconcile(spec)
        return self._finish()

    def _invalid_spec_edited(self) -> bool:
        """A job that failed its checks before it started starts over once its spec is edited."""
        failed = get_condition(self.old.conditions, "Failed")
        return (
            failed is not None
            and (failed.reason in RESTART_ON_EDIT or validation_gate.failed_validation(self.old))
            and self.job.generation != self.old.observed_generation
        )

    def _spec(self) -> SFTJobSpec | None:
        """The spec in effect: the one the job started with plus the fields that may change."""
        applied_raw = self.job.annotations.get(names.ANNOTATION_APPLIED_SPEC)
        signer = self.world.signer
        if self.old.phase in TERMINAL:
            applied_raw = None  # an InvalidSpec job that was edited starts over
        elif signer is not None:
            altered = records.applied_record_problem(
                signer, self.job.uid, self.job.annotations, started=bool(self.old.job_name)
            )
            if altered:
                live = [j for j in self.world.jobs if not is_deleting(j)]
                self.decision.actions += [DeleteJob(j["metadata"]["name"]) for j in live]
                self._fail("SpecRecordAltered", altered)
                return None
        if not names.is_dns_label(self.job.name):
            self._invalid([names.name_problem(self.job.name)])
            return None
        current = json.dumps(self.job.spec, sort_keys=True)
        spec, problems, refused = spec_changes.effective_spec(applied_raw, current)
        if spec is None:
            self._invalid(list(problems))
            return None
        if applied_raw is None:
            self.decision.annotations[names.ANNOTATION_APPLIED_SPEC] = current
            if signer is not None:
                signature = records.applied_signature(signer, self.job.uid, current)
                self.decision.annotations[records.ANNOTATION_APPLIED_SPEC_SIGNATURE] = signature
        if not refused:
            self.new.observed_generation = self.job.generation
        elif self.job.annotations.get(ANNOTATION_REFUSED_GENERATION) != str(self.job.generation):
            message = spec_changes.refusal_message(list(refused), self.old.phase or "Pending")
            self.decision.events.append(Note("Warning", "SpecChangeRefused", message))
            self.decision.annotations[ANNOTATION_REFUSED_GENERATION] = str(self.job.generation)
        return spec

    def _invalid(self, problems: list[str]) -> None:
        self.new = SFTJobStatus(conditions=self.new.conditions)
        self.decision.status = self.new
        self.new.observed_generation = self.job.generation
        self.new.conditions = drop_condition(self.new.conditions, "Created")
        self._fail("InvalidSpec", "; ".join(problems))

    def _reconcile(self, spec: SFTJobSpec) -> None:
        jobs = {attempt_of(j): j for j in self.world.jobs if attempt_of(j) >= 0}
        current = max([self.old.attempt, *jobs])
        self.new.attempt = current
        self.new.restarts = max(self.old.restarts, restarts_of(jobs.get(current)))
        job = jobs.get(current)
        if job is not None and is_deleting(job):
            job = None
        for attempt, stale in sorted(jobs.items()):
            if attempt < current and not is_deleting(stale):
                self.decision.actions.append(DeleteJob(stale["metadata"]["name"]))
        pods = [p for p in self.world.pods if pod_attempt(p) == current]
        state = observe_attempt(job, pods, spec.resources.nodes)
        if job is not None:
            self.new.job_name = job["metadata"]["name"]
        started_before = self.old.job_name == names.job_name(self.job.name, current) or bool(
            jobs.get(current) or pods
        )
        if state.phase == "Running" or (state.started_at and state.phase != "Waiting"):
            self.new.start_time = self.new.start_time or state.started_at or self.now

        deadline = spec.run_policy.active_deadline_seconds
        late = overdue(deadline, self.new.start_time, self.world.now)

        if state.phase == "Succeeded":
            self._succeed(spec, state)
            return
        if state.phase == "Failed" and state.failure is not None:
            failure = state.failure
            if late or failure.reason == "DeadlineExceeded":
                self._fail("DeadlineExceeded", deadline_message(deadline), job)
            elif spec.run_policy.suspend and failure.retryable:
                # The trainer stopped because of the suspension itself: not a failure to retry.
                if job is not None:
                    self.decision.actions.append(DeleteJob(job["metadata"]["name"]))
                self._suspended(spec, started_before)
            elif not failure.retryable:
                self._fail(failure.reason, failure.message, job)
            elif not failure.disruption and self.new.restarts >= spec.run_policy.backoff_limit:
                self._fail(
                    "BackoffLimitExceeded",
                    f"{failure.message}; no retries left after {self.new.restarts} restart(s) "
                    f"(spec.runPolicy.backoffLimit: {spec.run_policy.backoff_limit})",
                    job,
                )
            else:
                self._restart(spec, current, failure, job)
            return
        if late:
            self._fail("DeadlineExceeded", deadline_message(deadline), job)
            return
        if spec.run_policy.suspend:
            self._suspend(spec, job, state, started_before)
            return
        self._run(spec, job, state, current, started_before)

    def _attempt(self, spec: SFTJobSpec, index: int, restarts: int) -> Attempt:
        left = seconds_left(spec.run_policy.active_deadline_seconds, self.new.start_time, self.world.now)
        return Attempt(
            index, restarts, suspended=bool(spec.run_policy.queue_name), active_deadline_seconds=left
        )

    def _start(self, spec: SFTJobSpec, index: int, restarts: int, job: Job | None = None) -> bool:
        """Create the children of attempt ``index``; the status moves to Pending. False when the
        checks before a start refused it, and the job failed instead (``job`` is then deleted)."""
        if self.world.refusal is not None:
            self._fail(self.world.refusal.reason, self.world.refusal.message, job)
            return False
        name = names.job_name(self.job.name, index)
        self.decision.actions.append(EnsureChildren(self._attempt(spec, index, restarts), spec))
        self.new.attempt, self.new.restarts, self.new.job_name = index, restarts, name
        self.new.phase, self.new.stage = "Pending", None
        self._condition("Created", "True", "JobCreated", f"created Job {name} (attempt {index})")
        # What the pods will say a moment later, so that moment costs no second status write.
        self._condition("Running", "False", "PodStarting", "waiting for the trainer pods to start")
        self.decision.events.append(Note("Normal", "JobCreated", f"created Job {name} (attempt {index})"))
        return True

    def _restart(self, spec: SFTJobSpec, current: int, failure: Failure, job: Job | None) -> None:
        """The next attempt after ``failure``; a disruption is retried without using up a retry."""
        restarts = self.new.restarts + (0 if failure.disruption else 1)
        limit = spec.run_policy.backoff_limit
        if not self._start(spec, current + 1, restarts, job):
            return
        if failure.disruption:
            self.new.preemptions = self.old.preemptions + 1
        if job is not None:
            self.decision.actions.append(DeleteJob(job["metadata"]["name"]))
        counted = (
            f"a preemption does not count against spec.runPolicy.backoffLimit: {restarts} of {limit} used"
            if failure.disruption
            else f"restart {restarts} of {limit}"
        )
        self._condition(
            "Running",
            "False",
            failure.reason,
            f"attempt {current}: {failure.message}. Starting attempt {current + 1} ({counted}), "
            "resuming from the latest checkpoint",
        )

    def _suspend(self, spec: SFTJobSpec, job: Job | None, state: AttemptState, started_before: bool) -> None:
        by_job_field = self.world.job_suspend_supported and not spec.run_policy.queue_name
        if job is not None:
            if not by_job_field:
                self.decision.actions.append(DeleteJob(job["metadata"]["name"]))
            elif not job["spec"].get("suspend"):
                self.decision.actions.append(SuspendJob(job["metadata"]["name"], True))
        if state.live_pods:
            self.new.phase = self.old.phase if self.old.phase in ("Pending", "Running") else "Pending"
            grace = spec.run_policy.termination_grace_period_seconds
            self._condition(
                "Suspended",
                "False",
                "Suspending",
                f"stopping the trainer; it saves and uploads a checkpoint within {grace}s "
                "(spec.runPolicy.terminationGracePeriodSeconds)",
            )
            return
        self._suspended(spec, started_before)

    def _suspended(self, spec: SFTJobSpec, started_before: bool) -> None:
        self.new.phase = "Suspended"
        where = self.new.latest_checkpoint or "the latest checkpoint"
        if started_before:
            message = f"the trainer pods are stopped; training resumes from {where} when spec.runPolicy.suspend is false"
        else:
            message = "suspended before it started; it starts when spec.runPolicy.suspend is false"
        self._condition("Suspended", "True", "Suspended", message)
        self._condition("Running", "False", "Suspended", "the job is suspended")

    def _resumed(self) -> None:
        suspended = get_condition(self.new.conditions, "Suspended")
        if suspended is not None and (suspended.status == "True" or suspended.reason == "Suspending"):
            self._condition("Suspended", "False", "Resumed", "resumed from the latest checkpoint")
            self.decision.events.append(Note("Normal", "Resumed", "resuming from the latest checkpoint"))

    def _run(
        self,
        spec: SFTJobSpec,
        job: Job | None,
        state: AttemptState,
        current: int,
        started_before: bool,
    ) -> None:
        queue = spec.run_policy.queue_name
        if state.phase == "Missing":
            self._resumed()
            gate = validation_gate.gate(spec, self.new, self.world)
            self.decision.actions += gate.actions
            self.decision.events += gate.events
            if gate.failure is not None:
                self._fail(*gate.failure)
            elif gate.proceed:
                self._start(spec, current + 1 if started_before else current, self.new.restarts)
            return
        evicted = self._queue(queue, job)
        if evicted is not None and state.phase in ("Stopping", "Queued"):
            self._evicted(spec, evicted, stopping=state.phase == "Stopping")
            return
        if state.phase == "Stopping" and (job is None or queue):
            # The previous attempt's pods are still saving; start the next one after they stop.
            return
        if state.phase in ("Stopping", "Queued") and job is not None and not queue:
            self.decision.actions.append(SuspendJob(job["metadata"]["name"], False))
            self._resumed()
            self.new.phase = "Pending"
            self._condition("Running", "False", "Resuming", "resuming the suspended Job")
            return
        if state.phase == "Queued":
            self.new.phase = "Pending"
            message = self.new.queue.message if self.new.queue else f"waiting for Kueue (LocalQueue {queue})"
            self._condition("Running", "False", "Queued", message)
            return
        self._resumed()
        if state.phase == "Waiting":
            self.new.phase = "Pending"
            self._condition("Running", "False", state.reason, state.message)
            return
        self.new.phase = "Running"
        doing = STAGE_TEXT.get(self.new.stage or "Training", "training")
        self._condition(
            "Running", "True", "Training", f"attempt {current} is {doing} on {spec.resources.nodes} node(s)"
        )
        change = job_deadline_change(spec.run_policy.active_deadline_seconds, job, self.new.start_time)
        self.decision.actions += [change] if change is not None else []

    def _queue(self, queue: str | None, job: Job | None) -> tuple[str, str] | None:
        """Record Kueue's word on the current Job in status.queue; Kueue's (reason, message) while
        it holds the job evicted."""
        outcome, evicted = look_at_queue(self.world, self.old.queue, queue, job)
        if outcome is not None:
            self.new.queue, self.decision.queue_wait = outcome.status, outcome.admitted_after
        if outcome is not None and outcome.admitted_after is not None:
            self.decision.events.append(Note("Normal", "Admitted", admitted_message(outcome)))
        return evicted

    def _evicted(self, spec: SFTJobSpec, evicted: tuple[str, str], *, stopping: bool) -> None:
        """Kueue took the job's quota back (preemption, for one): a pause, not a failure."""
        grace, checkpoint = spec.run_policy.termination_grace_period_seconds, self.new.latest_checkpoint
        for change in evicted_conditions(evicted, grace, checkpoint, self.new.queue, stopping=stopping):
            self._condition(*change)
        self.new.phase = self.new.phase if stopping else "Suspended"

    def _finish(self) -> Decision:
        before = headline(self.old.phase, self.old.conditions)
        after = headline(self.new.phase, self.new.conditions)
        if after[:2] != before[:2] and after[0] and after[1] not in QUIET_REASONS:
            phase, reason, message = after
            warning = phase == "Failed" or reason in WARNING_REASONS
            self.decision.events.insert(0, Note("Warning" if warning else "Normal", reason or phase, message))
        if self.new.phase in TERMINAL or self.new.phase == "Suspended":
            self.new.stage = None  # no trainer runs
        self.decision.status = self.new
        return self.decision


def decide(world: World) -> Decision:
    """The status, actions and events for one SFTJob, from what exists now."""
    return _Machine(world).run()
