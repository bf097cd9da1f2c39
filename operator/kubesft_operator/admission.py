"""The admission handlers: who may create an SFTJob with what, and the record of who did.

Two webhooks serve SFTJob creates and updates. The mutating one records the requesting user in
a signed annotation (``records``) and carries the operator's records over every edit a user
makes. The validating one refuses a spec that is invalid, breaks the platform policy, or needs
a permission the requesting user lacks (``authorization``): an SFTJob may do no more than the
user who set its spec.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from kubesft_api.sftjob import parse_spec
from kubesft_operator import authorization
from kubesft_operator.policy import Policy
from kubesft_operator.records import (
    ADMISSION_RECORD,
    APPLIED_RECORD,
    Creator,
    Signer,
    admission_record,
    applied_record_verifies,
    spec_digest,
)
from kubesft_operator.webhook import admission_problems

logger = logging.getLogger(__name__)


def record_changes(
    signer: Signer,
    operation: str,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    creator: Creator,
) -> dict[str, str | None]:
    """Annotations to set (None: remove) so that the SFTJob carries only records the operator made.

    A create, or an update that changes the spec, records the requesting user; any other update
    keeps the record the SFTJob had. The applied spec is the operator's own: a create may not
    bring one, and an update keeps the old one unless the new one carries the operator's signature.
    """
    meta = body.get("metadata") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    old_annotations: Mapping[str, str] = ((old or {}).get("metadata") or {}).get("annotations") or {}
    spec = body.get("spec") or {}
    changes: dict[str, str | None] = {}
    if operation == "CREATE" or spec_digest(spec) != spec_digest((old or {}).get("spec") or {}):
        changes.update(admission_record(signer, meta.get("namespace", ""), spec, creator))
    else:
        changes.update({key: old_annotations.get(key) for key in ADMISSION_RECORD})
    if operation == "CREATE":
        changes.update({key: None for key in APPLIED_RECORD})
    elif not applied_record_verifies(signer, meta.get("uid", ""), annotations):
        changes.update({key: old_annotations.get(key) for key in APPLIED_RECORD})
    return {key: value for key, value in changes.items() if annotations.get(key) != value}


def needs_review(operation: str, spec: Mapping[str, Any], old_spec: Mapping[str, Any] | None) -> bool:
    """Whether the request sets the spec, so the requesting user's permissions decide."""
    return operation == "CREATE" or spec_digest(spec) != spec_digest(old_spec or {})


@dataclass(frozen=True)
class Admission:
    """What the admission handlers need from the running operator, kept in Kopf's memo."""

    policy: Policy
    review: authorization.Review
    signer: Signer | None = None

    async def problems(
        self,
        operation: str,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        creator: Creator,
    ) -> list[str]:
        """Why the request must be refused; empty when it may go ahead."""
        meta = body.get("metadata") or {}
        namespace = meta.get("namespace", "")
        spec = dict(body.get("spec") or {})
        old_spec = dict((old or {}).get("spec") or {}) if old else None
        problems = admission_problems(
            operation,
            meta.get("name"),
            spec,
            old_spec=old_spec,
            old_phase=((old or {}).get("status") or {}).get("phase"),
            namespace=namespace,
            policy=self.policy,
        )
        if problems or not needs_review(operation, spec, old_spec):
            return problems
        return await authorization.denied(self.review, namespace, creator, parse_spec(spec))


def _admission(memo: kopf.Memo) -> Admission:
    admission = memo.get("admission")
    if not isinstance(admission, Admission):
        raise kopf.AdmissionError("the kubesft operator is still starting; try again", code=503)
    return admission


async def validate_sftjob(
    body: kopf.Body,
    userinfo: Mapping[str, Any],
    memo: kopf.Memo,
    operation: str | None = None,
    old: kopf.Body | None = None,
    **_: Any,
) -> None:
    """Kopf validating handler for SFTJob CREATE and UPDATE."""
    creator = Creator.from_userinfo(userinfo)
    old_body = dict(old) if old else None
    problems = await _admission(memo).problems(operation or "", dict(body), old_body, creator)
    if problems:
        meta = body.get("metadata", {})
        logger.info(
            "refused %s of SFTJob %s/%s by %s: %s",
            operation,
            meta.get("namespace"),
            meta.get("name"),
            creator.username,
            problems,
        )
        raise kopf.AdmissionError("; ".join(problems), code=422)


def record_admission(
    body: kopf.Body,
    userinfo: Mapping[str, Any],
    memo: kopf.Memo,
    patch: kopf.Patch,
    operation: str | None = None,
    old: kopf.Body | None = None,
    **_: Any,
) -> None:
    """Kopf mutating handler: the admission record, and the operator's records kept as they were."""
    signer = _admission(memo).signer
    if signer is None:
        return
    creator = Creator.from_userinfo(userinfo)
    changes = record_changes(signer, operation or "", dict(body), dict(old) if old else None, creator)
    for key, value in changes.items():
        patch.metadata.annotations[key] = value
