"""What an SFTJob's creator must be allowed, and how a refusal names the field and the permission."""

from __future__ import annotations

import asyncio

from kubesft_api.sftjob import parse_spec
from kubesft_operator.authorization import Permission, RecentAnswers, denied, required_permissions
from kubesft_operator.records import Creator
from tests.support.operator_objects import spec_dict

ALICE = Creator("alice", groups=("team-a",))


def _spec_with_every_reference() -> dict[str, object]:
    raw = spec_dict()
    raw["model"]["tokenSecret"] = {"name": "hf", "key": "HF_TOKEN"}
    raw["resources"] = {
        "env": [
            {"name": "PLAIN", "value": "1"},
            {"name": "TRACKER", "valueFrom": {"secretKeyRef": {"name": "tracker", "key": "token"}}},
            {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}}},
            {"name": "AGAIN", "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": "other"}}},
        ],
        "envFrom": [{"secretRef": {"name": "extra"}}, {"configMapRef": {"name": "settings"}}],
    }
    return raw


def test_every_secret_and_config_map_the_spec_names_needs_get_and_the_pods_need_create() -> None:
    permissions = required_permissions(parse_spec(_spec_with_every_reference()))
    assert [(p.verb, p.resource, p.name) for p in permissions] == [
        ("create", "pods", None),
        ("get", "secrets", "s3-credentials"),
        ("get", "secrets", "hf"),
        ("get", "secrets", "tracker"),
        ("get", "configmaps", "settings"),
        ("get", "secrets", "extra"),
    ]
    s3 = next(p for p in permissions if p.name == "s3-credentials")
    assert s3.fields == ("spec.checkpoints.credentialsSecret", "spec.resources.env[3].valueFrom.secretKeyRef")
    settings = next(p for p in permissions if p.name == "settings")
    assert settings.fields == (
        "spec.resources.env[2].valueFrom.configMapKeyRef",
        "spec.resources.envFrom[1].configMapRef",
    )


def test_a_spec_without_references_needs_only_pods() -> None:
    raw = spec_dict()
    del raw["checkpoints"]["credentialsSecret"]
    assert [(p.verb, p.resource) for p in required_permissions(parse_spec(raw))] == [("create", "pods")]


def test_each_denied_permission_is_named_with_its_fields() -> None:
    asked: list[tuple[str, Creator, Permission]] = []

    async def review(namespace: str, user: Creator, permission: Permission) -> bool:
        asked.append((namespace, user, permission))
        return permission.name not in ("tracker", None)

    problems = asyncio.run(denied(review, "team-a", ALICE, parse_spec(_spec_with_every_reference())))
    assert problems == [
        "the trainer pods the operator creates for the job: user 'alice' may not create pods in namespace "
        "team-a, and an SFTJob may not do what its creator may not",
        "spec.resources.env[1].valueFrom.secretKeyRef: user 'alice' may not get secrets 'tracker' in "
        "namespace team-a, and an SFTJob may not do what its creator may not",
    ]
    assert {(namespace, user) for namespace, user, _ in asked} == {("team-a", ALICE)}
    assert len(asked) == 6


def test_a_creator_allowed_everything_has_no_problems() -> None:
    async def review(namespace: str, user: Creator, permission: Permission) -> bool:
        return True

    assert asyncio.run(denied(review, "team-a", ALICE, parse_spec(spec_dict()))) == []


class _Asked:
    """A review that counts its questions and answers what ``allowed`` says at the time."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed
        self.questions = 0

    async def __call__(self, namespace: str, creator: Creator, permission: Permission) -> bool:
        self.questions += 1
        await asyncio.sleep(0)
        return self.allowed


PODS = Permission("create", "pods", None, ("pods",))
ALICE = Creator("alice", groups=("team-a",))


def test_a_yes_is_kept_for_its_ttl_and_asked_again_after_it() -> None:
    now = [100.0]
    asked = _Asked(True)
    answers = RecentAnswers(asked, allowed_ttl=10.0, clock=lambda: now[0])

    async def ask() -> bool:
        return await answers("ns", ALICE, PODS)

    assert asyncio.run(ask()) and asyncio.run(ask())
    assert asked.questions == 1
    asked.allowed = False  # revoked
    now[0] += 10.5
    assert not asyncio.run(ask())
    assert asked.questions == 2


def test_a_no_is_never_kept_so_a_grant_counts_at_once() -> None:
    asked = _Asked(False)
    answers = RecentAnswers(asked, clock=lambda: 0.0)
    assert not asyncio.run(answers("ns", ALICE, PODS))
    asked.allowed = True
    assert asyncio.run(answers("ns", ALICE, PODS))
    assert asked.questions == 2


def test_another_user_namespace_or_permission_is_another_question() -> None:
    asked = _Asked(True)
    answers = RecentAnswers(asked, clock=lambda: 0.0)
    secret = Permission("get", "secrets", "s3", ("spec.checkpoints.credentialsSecret",))

    async def ask_all() -> None:
        for namespace, creator, permission in [
            ("ns", ALICE, PODS),
            ("other", ALICE, PODS),
            ("ns", Creator("alice", groups=("team-b",)), PODS),
            ("ns", ALICE, secret),
        ]:
            assert await answers(namespace, creator, permission)

    asyncio.run(ask_all())
    assert asked.questions == 4


def test_questions_asked_at_once_share_one_review() -> None:
    asked = _Asked(True)
    answers = RecentAnswers(asked, clock=lambda: 0.0)

    async def at_once() -> list[bool]:
        return list(await asyncio.gather(*(answers("ns", ALICE, PODS) for _ in range(20))))

    assert asyncio.run(at_once()) == [True] * 20
    assert asked.questions == 1
