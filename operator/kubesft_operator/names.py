"""Deterministic names, labels and annotations of the objects an SFTJob owns.

Names are derived from the SFTJob's name and the attempt number only, so an operator that
restarts finds what it made before instead of making it twice.
"""

from __future__ import annotations

import hashlib
import re

from kubesft_api.pod_contract import ANNOTATION_COMPLETION_INDEX as ANNOTATION_COMPLETION_INDEX
from kubesft_api.pod_contract import CONTAINER_NAME as CONTAINER_NAME
from kubesft_api.pod_contract import GROUP
from kubesft_api.pod_contract import LABEL_ATTEMPT as LABEL_ATTEMPT
from kubesft_api.pod_contract import LABEL_JOB as LABEL_JOB

LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_STAGE = f"{GROUP}/stage"
"""On the validation Job and its pod: ``validation``. Trainer Jobs carry an attempt instead."""
VALIDATION_STAGE = "validation"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
MANAGED_BY = "kubesft-operator"

ANNOTATION_APPLIED_SPEC = f"{GROUP}/applied-spec"
"""On the SFTJob: the spec the running job was started with (JSON)."""
ANNOTATION_ATTEMPT = f"{GROUP}/attempt"
ANNOTATION_RESTARTS = f"{GROUP}/restarts"
ANNOTATION_SPEC_DIGEST = f"{GROUP}/spec-digest"
"""On the validation Job: the digest of the trainer settings it validates."""
"""On a Job: the restart count when it was created, so status can be derived from it."""
FINALIZER = f"{GROUP}/finalizer"
"""Kopf's finalizer name. SFTJobs carry none; Kopf removes it from those that earlier versions
marked with it."""

MAX_NAME_LENGTH = 63
_INDEX_SUFFIX_ROOM = 4
"""Indexed Job pods are named ``<job>-<index>``; keep room for an index up to 999."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 label: what label values and pod host names must be."""
    return len(name) <= MAX_NAME_LENGTH and _DNS_LABEL.match(name) is not None


def name_problem(name: str) -> str:
    """Why an SFTJob name cannot be used, naming the field."""
    return (
        f"metadata.name: '{name}' must be a DNS label (lower-case letters, digits and '-') of at most "
        f"{MAX_NAME_LENGTH} characters; it becomes a label value and names the trainer pods"
    )


def _shorten(base: str, room: int) -> str:
    """``base`` if it fits in ``room`` characters, else a prefix plus a stable hash."""
    if len(base) <= room:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    return f"{base[: room - 7].rstrip('-')}-{digest}"


def job_name(sftjob: str, attempt: int) -> str:
    """The trainer Job of one attempt: ``<sftjob>-<attempt>``, shortened to stay a valid host name."""
    suffix = f"-{attempt}"
    return _shorten(sftjob, MAX_NAME_LENGTH - _INDEX_SUFFIX_ROOM - len(suffix)) + suffix


def validation_job_name(sftjob: str, digest: str) -> str:
    """The validation Job of one version of the settings: ``<sftjob>-validate-<digest>``."""
    suffix = f"-validate-{digest[:6]}"
    return _shorten(sftjob, MAX_NAME_LENGTH - _INDEX_SUFFIX_ROOM - len(suffix)) + suffix


def configmap_name(sftjob: str) -> str:
    return f"{sftjob}-config"


def network_policy_name(sftjob: str) -> str:
    """The NetworkPolicy of the job's trainer pods."""
    return f"{sftjob}-trainers"


def service_name(sftjob: str) -> str:
    """The headless Service of a multi-node job; a DNS-1035 label (starts with a letter)."""
    base = sftjob if sftjob[:1].isalpha() else f"j{sftjob}"
    return _shorten(f"{base}-nodes", MAX_NAME_LENGTH)


def child_labels(sftjob: str) -> dict[str, str]:
    """Labels of everything an SFTJob owns, trainer pods included."""
    return {
        LABEL_NAME: "kubesft",
        LABEL_COMPONENT: "trainer",
        LABEL_INSTANCE: sftjob,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB: sftjob,
    }
