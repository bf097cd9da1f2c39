"""Errors the client raises, each with a one-line message that names its cause.

The command line prints ``str(error)`` and nothing else, so every message must say what failed
and what it was about (the flag, the field, the verb and resource) without a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiException

from kubesft_api.sftjob import GROUP, PLURAL, VERSION

RESOURCE = f"{PLURAL}.{GROUP}"


class KubesftError(Exception):
    """Base of every error the client raises on purpose."""


class ConfigurationError(KubesftError):
    """No usable kubeconfig, or a context that is not in it."""


class CRDNotInstalledError(KubesftError):
    """The cluster does not serve the SFTJob resource."""


class ForbiddenError(KubesftError):
    """The user's credentials may not do what was asked (HTTP 403)."""


class UnauthorizedError(KubesftError):
    """The API server did not accept the credentials (HTTP 401)."""


class NotFoundError(KubesftError):
    """The SFTJob, or the pod asked for, does not exist."""


class AlreadyExistsError(KubesftError):
    """An SFTJob of that name exists already (HTTP 409)."""


class InvalidError(KubesftError):
    """The spec is invalid: offline validation, the CRD schema or the admission webhook refused it."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class WaitTimeoutError(KubesftError):
    """The SFTJob did not finish within the time given."""


class LogsUnavailableError(KubesftError):
    """The pod's log cannot be read (yet)."""


class DownloadError(KubesftError):
    """The output cannot be downloaded from here, or object storage refused it."""


class ApiError(KubesftError):
    """Any other answer of the API server that is not a success."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _status_body(error: ApiException) -> dict[str, Any] | None:
    """The Kubernetes Status object of an error answer, if the body is one."""
    body = error.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("kind") == "Status" else None


def server_message(error: ApiException) -> str:
    """What the API server said: its Status message, else the HTTP reason."""
    status = _status_body(error)
    return str((status or {}).get("message") or error.reason or "").strip()


def _where(namespace: str | None) -> str:
    return f" in namespace {namespace}" if namespace else " in any namespace"


def api_error(
    error: ApiException,
    *,
    verb: str,
    resource: str = RESOURCE,
    name: str | None = None,
    namespace: str | None = None,
) -> KubesftError:
    """The client's error for an API server's refusal of ``verb`` on ``resource``."""
    status = _status_body(error)
    message = server_message(error)
    reason = (status or {}).get("reason")
    code = error.status
    details = (status or {}).get("details") or {}
    if (
        code == 404
        and resource == RESOURCE
        and not (name and reason == "NotFound" and details.get("name") == name)
    ):
        # For a group/version it does not serve the API server answers "404 page not found", or a
        # Status that names no object.
        return CRDNotInstalledError(
            f"the SFTJob resource ({RESOURCE}/{VERSION}) is not installed in this cluster: "
            "install the kubesft chart (or kubectl apply -f crds/)"
        )
    if code == 404:
        kind = "SFTJob" if resource == RESOURCE else resource
        return NotFoundError(f"{kind} {name} not found{_where(namespace)}")
    if code == 403:
        target = f"{resource} {name}" if name else resource
        return ForbiddenError(f"forbidden: you may not {verb} {target}{_where(namespace)} ({message})")
    if code == 401:
        return UnauthorizedError(
            f"unauthorized: the API server did not accept your credentials for {verb} {resource}"
            f" ({message or 'HTTP 401'}); log in again or check the kubeconfig's user"
        )
    if code == 409 and verb == "create":
        return AlreadyExistsError(f"SFTJob {name} already exists{_where(namespace)}; pick another --name")
    if code == 422 or (code == 400 and reason in ("BadRequest", "Invalid")):
        return InvalidError(f"the API server refused SFTJob {name}: {message}")
    detail = f": {message}" if message else ""
    return ApiError(f"{verb} {resource}{' ' + name if name else ''} failed with HTTP {code}{detail}", code)
