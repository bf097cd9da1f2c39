"""Records on an SFTJob that only the operator can write: who admitted its spec, and what it started.

Both live in annotations, which anyone who may edit the SFTJob can change, so each carries an
HMAC signature made with a key only the operator holds (a Secret in its namespace, from the
chart). The mutating webhook writes the admission record and carries both records over unchanged
through every edit a user makes; the operator signs the applied spec when a job starts, and
trusts neither record without a good signature. Someone who bypasses the webhook can delete or
rewrite a record, but not forge one.

An admission record is bound to the namespace and the spec (all but the fields that may change
while a job runs), not to the object, because the mutating webhook runs before the object has a
uid. A record copied onto another SFTJob of the same namespace with the same spec therefore
grants nothing its creator had not already been allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesft_api.sftjob import GROUP
from kubesft_operator import names
from kubesft_operator.spec_changes import MUTABLE_FIELDS, with_defaults

ANNOTATION_ADMITTED_BY = f"{GROUP}/admitted-by"
"""The user whose request last set the spec, as the API server authenticated them (JSON)."""
ANNOTATION_ADMISSION_SIGNATURE = f"{GROUP}/admission-signature"
ANNOTATION_APPLIED_SPEC_SIGNATURE = f"{GROUP}/applied-spec-signature"
ADMISSION_RECORD = (ANNOTATION_ADMITTED_BY, ANNOTATION_ADMISSION_SIGNATURE)
APPLIED_RECORD = (names.ANNOTATION_APPLIED_SPEC, ANNOTATION_APPLIED_SPEC_SIGNATURE)


@dataclass(frozen=True)
class Creator:
    """A user as an admission request names them; what a SubjectAccessReview asks about."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Extra attributes the authenticator gave (e.g. scopes), as sorted pairs."""

    @classmethod
    def from_userinfo(cls, userinfo: Mapping[str, Any]) -> Creator:
        extra = userinfo.get("extra") or {}
        return cls(
            username=str(userinfo.get("username") or ""),
            uid=str(userinfo.get("uid") or ""),
            groups=tuple(str(g) for g in userinfo.get("groups") or ()),
            extra=tuple((str(k), tuple(str(v) for v in values or ())) for k, values in sorted(extra.items())),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "username": self.username,
                "uid": self.uid,
                "groups": list(self.groups),
                "extra": {k: list(v) for k, v in self.extra},
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Creator | None:
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict) or not raw.get("username"):
            return None
        return cls.from_userinfo(raw)


class Signer:
    """HMAC-SHA256 with the operator's key; each record kind signs under its own purpose."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the signing key needs at least 16 bytes")
        self._key = key

    def sign(self, purpose: str, *parts: str) -> str:
        message = "\0".join((purpose, *parts)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, signature: str | None, purpose: str, *parts: str) -> bool:
        return signature is not None and hmac.compare_digest(signature, self.sign(purpose, *parts))


def spec_digest(spec: Mapping[str, Any]) -> str:
    """A digest of ``spec`` without the fields a running job may change, its defaults applied: the
    API server fills a section's defaults when a patch creates it, which changes nothing."""
    normal = with_defaults(dict(spec))
    fixed = {key: dict(value) if isinstance(value, dict) else value for key, value in normal.items()}
    for section, name in MUTABLE_FIELDS:
        part = fixed.get(section)
        if isinstance(part, dict):
            part.pop(name, None)
            if not part:
                del fixed[section]
    text = json.dumps(fixed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def admission_record(
    signer: Signer, namespace: str, spec: Mapping[str, Any], creator: Creator
) -> dict[str, str]:
    """The annotations that say ``creator`` set ``spec`` in ``namespace``."""
    record = creator.to_json()
    return {
        ANNOTATION_ADMITTED_BY: record,
        ANNOTATION_ADMISSION_SIGNATURE: signer.sign("admission", namespace, spec_digest(spec), record),
    }


def admitted_creator(
    signer: Signer, namespace: str, spec: Mapping[str, Any], annotations: Mapping[str, str]
) -> Creator | None:
    """Who set ``spec``, if the SFTJob's admission record says so with a good signature."""
    record = annotations.get(ANNOTATION_ADMITTED_BY)
    if record is None:
        return None
    signature = annotations.get(ANNOTATION_ADMISSION_SIGNATURE)
    if not signer.verify(signature, "admission", namespace, spec_digest(spec), record):
        return None
    return Creator.from_json(record)


def applied_signature(signer: Signer, uid: str, applied: str) -> str:
    return signer.sign("applied-spec", uid, applied)


def applied_record_verifies(signer: Signer, uid: str, annotations: Mapping[str, str]) -> bool:
    """Whether the applied spec on the SFTJob ``uid`` is the one the operator signed."""
    applied = annotations.get(names.ANNOTATION_APPLIED_SPEC)
    if applied is None:
        return False
    return signer.verify(annotations.get(ANNOTATION_APPLIED_SPEC_SIGNATURE), "applied-spec", uid, applied)


def applied_record_problem(
    signer: Signer, uid: str, annotations: Mapping[str, str], started: bool
) -> str | None:
    """Why the applied-spec record of a job cannot be trusted, or None when it can.

    No record is fine before the job started; after, someone removed it.
    """
    present = names.ANNOTATION_APPLIED_SPEC in annotations
    if (not present and not started) or (present and applied_record_verifies(signer, uid, annotations)):
        return None
    return (
        f"annotation {names.ANNOTATION_APPLIED_SPEC} was changed or removed outside the operator, so the "
        "spec this job started with is no longer known; delete and re-create the SFTJob"
    )
