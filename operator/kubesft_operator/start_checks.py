"""The checks the operator makes before it starts an attempt, whether or not the webhook ran.

An SFTJob may reach the operator without passing admission: created while the webhook was down
with ``failurePolicy: Ignore``, before the operator was installed, or by editing the objects
directly. So before each start the operator checks the platform policy again and asks the API
server again whether the job's creator, as the webhook recorded them, may do what the job's pods
will. A job without a record that verifies does not start.
"""

from __future__ import annotations

import json
from typing import Any

from kubesft_api.sftjob import SFTJobSpec
from kubesft_operator import authorization, names
from kubesft_operator.decisions import Decision, Refusal
from kubesft_operator.objects import SFTJob
from kubesft_operator.policy import Policy, policy_problems
from kubesft_operator.records import Signer, admitted_creator

NOT_ADMITTED = (
    "the SFTJob carries no admission record from the kubesft webhook that matches its spec: it was "
    "created or changed while the webhook was not running, or the record was edited, so the operator "
    "cannot tell whose permissions it runs with; re-create it, or change its spec, while the webhook runs"
)


class StartChecks:
    """Policy, admission record and the creator's permissions, for one attempt about to start."""

    def __init__(
        self,
        policy: Policy,
        review: authorization.Review,
        signer: Signer | None = None,
        records_required: bool = False,
    ) -> None:
        self.policy = policy
        self.review = review
        self.signer = signer
        self.records_required = records_required and signer is not None

    async def refusal(self, body: SFTJob, decision: Decision, spec: SFTJobSpec) -> Refusal | None:
        """Why the attempt ``decision`` starts must not start, or None when it may."""
        meta = body["metadata"]
        namespace = meta.get("namespace", "")
        problems = policy_problems(spec, namespace, self.policy)
        if problems:
            return Refusal("PolicyViolation", "; ".join(problems))
        if not self.records_required or self.signer is None:
            return None
        annotations = meta.get("annotations") or {}
        applied = decision.annotations.get(names.ANNOTATION_APPLIED_SPEC) or annotations.get(
            names.ANNOTATION_APPLIED_SPEC
        )
        source: dict[str, Any] = json.loads(applied) if applied else body["spec"]
        creator = admitted_creator(self.signer, namespace, source, annotations)
        if creator is None:
            return Refusal("NotAdmitted", NOT_ADMITTED)
        denied = await authorization.denied(self.review, namespace, creator, spec)
        if denied:
            return Refusal("Unauthorized", "; ".join(denied))
        return None
