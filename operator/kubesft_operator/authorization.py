"""What an SFTJob's creator must be allowed to do themselves, asked of the API server.

The operator creates pods that read the Secrets and ConfigMaps a spec names. Without a check, a
user who may only create SFTJobs could read every Secret of the namespace through them. So the
creator must be allowed to ``get`` each Secret and ConfigMap the spec references and to
``create`` pods in the namespace: the webhook asks for the requesting user at admission, and the
operator asks again for the recorded creator before it starts each attempt. Both ask with
LocalSubjectAccessReviews, which the API server answers with the cluster's real authorizers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubesft_api.sftjob import SFTJobSpec
from kubesft_operator.records import Creator


@dataclass(frozen=True)
class Permission:
    """One request the creator must be allowed to make, and the spec fields that need it."""

    verb: str
    resource: str
    name: str | None
    fields: tuple[str, ...]

    def describe(self, namespace: str) -> str:
        target = f"{self.resource} '{self.name}'" if self.name else self.resource
        return f"{self.verb} {target} in namespace {namespace}"


Review = Callable[[str, Creator, Permission], Awaitable[bool]]
"""Asks the API server whether the user may: (namespace, user, permission) -> allowed."""


ALLOWED_TTL_SECONDS = 10.0
"""How long a "yes" is taken as still true. The API server's own webhook authorizer keeps one for
5 minutes by default; 10 s spares the round trip when one user creates many SFTJobs (the webhook
and the operator ask the same questions a moment apart), and a revoked permission stops new starts
within 10 s. A "no" is never kept: once granted, the next try passes."""
_MAX_KEPT = 4096


class RecentAnswers:
    """A ``Review`` that remembers recent "yes" answers, and asks only once for a question
    already on its way."""

    def __init__(
        self,
        review: Review,
        allowed_ttl: float = ALLOWED_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._review, self._ttl, self._clock = review, allowed_ttl, clock
        self._allowed_until: dict[tuple[str, Creator, Permission], float] = {}
        self._asking: dict[tuple[str, Creator, Permission], asyncio.Task[bool]] = {}

    async def __call__(self, namespace: str, creator: Creator, permission: Permission) -> bool:
        key = (namespace, creator, permission)
        if self._allowed_until.get(key, -1.0) > self._clock():
            return True
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.create_task(self._ask(key))
            self._asking[key] = asking
        # Shielded: one caller giving up must not cancel the answer others wait for.
        return await asyncio.shield(asking)

    async def _ask(self, key: tuple[str, Creator, Permission]) -> bool:
        try:
            allowed = await self._review(*key)
        finally:
            del self._asking[key]
        if allowed:
            now = self._clock()
            if len(self._allowed_until) >= _MAX_KEPT:
                kept = {k: t for k, t in self._allowed_until.items() if t > now}
                self._allowed_until = kept if len(kept) < _MAX_KEPT else {}
            self._allowed_until[key] = now + self._ttl
        return allowed


def required_permissions(spec: SFTJobSpec) -> list[Permission]:
    """Every permission the job's pods stand in for, in the order the spec names them."""
    wanted: dict[tuple[str, str], list[str]] = {}

    def need(resource: str, name: str, where: str) -> None:
        wanted.setdefault((resource, name), []).append(where)

    if spec.checkpoints.credentials_secret is not None:
        need("secrets", spec.checkpoints.credentials_secret.name, "spec.checkpoints.credentialsSecret")
    if spec.model.token_secret is not None:
        need("secrets", spec.model.token_secret.name, "spec.model.tokenSecret")
    for number, item in enumerate(spec.resources.env):
        source = item.value_from
        if source is not None and source.secret_key_ref is not None:
            need(
                "secrets", source.secret_key_ref.name, f"spec.resources.env[{number}].valueFrom.secretKeyRef"
            )
        if source is not None and source.config_map_key_ref is not None:
            need(
                "configmaps",
                source.config_map_key_ref.name,
                f"spec.resources.env[{number}].valueFrom.configMapKeyRef",
            )
    for number, env_from in enumerate(spec.resources.env_from):
        if env_from.secret_ref is not None:
            need("secrets", env_from.secret_ref.name, f"spec.resources.envFrom[{number}].secretRef")
        if env_from.config_map_ref is not None:
            need("configmaps", env_from.config_map_ref.name, f"spec.resources.envFrom[{number}].configMapRef")
    pods = Permission("create", "pods", None, ("the trainer pods the operator creates for the job",))
    return [
        pods,
        *(Permission("get", resource, name, tuple(fields)) for (resource, name), fields in wanted.items()),
    ]


def refusal(namespace: str, creator: Creator, permission: Permission) -> str:
    return (
        f"{', '.join(permission.fields)}: user '{creator.username}' may not "
        f"{permission.describe(namespace)}, and an SFTJob may not do what its creator may not"
    )


async def denied(review: Review, namespace: str, creator: Creator, spec: SFTJobSpec) -> list[str]:
    """What ``creator`` may not do that the job would; empty when they may do all of it."""
    permissions = required_permissions(spec)
    allowed = await asyncio.gather(*(review(namespace, creator, p) for p in permissions))
    return [refusal(namespace, creator, p) for p, ok in zip(permissions, allowed, strict=True) if not ok]
