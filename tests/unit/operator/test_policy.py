"""The platform policy: each violation names the spec field and the policy value it breaks."""

from __future__ import annotations

from typing import Any

import pytest

from kubesft_api.sftjob import InvalidSpecError, parse_spec
from kubesft_operator.policy import Policy, image_repository, policy_problems, repository_patterns, s3_uris
from tests.support.operator_objects import spec_dict

TRAINER = "ghcr.io/kubesft/kubesft-trainer:0.1.0"
STRICT = Policy(
    allowed_images=repository_patterns(TRAINER),
    allowed_priority_classes=("team-*",),
    storage_prefixes=("s3://ckpt/{namespace}/", "s3://out/{namespace}"),
    allow_ambient_credentials=False,
)


def _problems(policy: Policy = STRICT, namespace: str = "team-a", **changes: Any) -> list[str]:
    raw = spec_dict()
    raw["checkpoints"]["uri"] = "s3://ckpt/team-a/chat"
    raw["output"]["uri"] = "s3://out/team-a/chat"
    for dotted, value in changes.items():
        section, field = dotted.split("__")
        if value is None:
            raw.setdefault(section, {}).pop(field, None)
        else:
            raw.setdefault(section, {})[field] = value
    return policy_problems(parse_spec(raw), namespace, policy)


def test_the_default_policy_allows_everything() -> None:
    assert _problems(Policy(), resources__image="anything:1", resources__priorityClassName="x") == []


def test_a_spec_within_the_policy_has_no_problems() -> None:
    assert _problems() == []
    assert _problems(resources__image="ghcr.io/kubesft/kubesft-trainer:0.2.0") == []
    assert _problems(resources__image="ghcr.io/kubesft/kubesft-trainer@sha256:" + "a" * 64) == []
    assert _problems(resources__priorityClassName="team-high") == []


def test_image_repository_drops_tag_and_digest_but_keeps_a_registry_port() -> None:
    assert image_repository("registry:5000/kubesft/trainer:1.0") == "registry:5000/kubesft/trainer"
    assert image_repository("registry:5000/kubesft/trainer") == "registry:5000/kubesft/trainer"
    assert image_repository("ghcr.io/x/y@sha256:abc") == "ghcr.io/x/y"


@pytest.mark.parametrize(
    ("image"),
    ["docker.io/evil/miner:1", "ghcr.io/kubesft/kubesft-trainer-evil:1", "ghcr.io/kubesft/kubesft-trainer"],
)
def test_other_images_are_refused_naming_the_patterns(image: str) -> None:
    (problem,) = _problems(resources__image=image)
    assert problem == (
        f"spec.resources.image: '{image}' matches no pattern of policy.allowedImages "
        "(ghcr.io/kubesft/kubesft-trainer:*, ghcr.io/kubesft/kubesft-trainer@sha256:*)"
    )


def test_priority_classes_outside_the_list_are_refused() -> None:
    (problem,) = _problems(resources__priorityClassName="system-node-critical")
    assert problem == (
        "spec.resources.priorityClassName: 'system-node-critical' is not in policy.allowedPriorityClasses (team-*)"
    )
    (none,) = _problems(Policy(allowed_priority_classes=()), resources__priorityClassName="team-high")
    assert none.endswith("(none allowed)")


def test_written_locations_must_fall_under_the_namespace_prefixes() -> None:
    (problem,) = _problems(output__uri="s3://out/team-b/chat")
    assert problem == (
        "spec.output.uri: 's3://out/team-b/chat' is outside policy.storagePrefixes, which allows in "
        "namespace team-a: s3://ckpt/team-a/, s3://out/team-a"
    )
    # A prefix without a trailing slash is still a folder: team-ab is not under team-a.
    assert _problems(output__uri="s3://out/team-ab/chat")
    assert _problems(output__uri="s3://out/team-a") == []
    # '..' cannot climb out of a prefix: the spec itself refuses it, before the policy is asked.
    with pytest.raises(InvalidSpecError, match=r"has a '\.\.' path segment"):
        _problems(checkpoints__uri="s3://ckpt/team-a/../team-b/x")
    # Reads are not limited by the prefixes, only by the job's credentials.
    assert _problems(model__uri="s3://models/shared/tiny") == []


def test_s3_without_a_credentials_secret_needs_ambient_credentials_allowed() -> None:
    (problem,) = _problems(checkpoints__credentialsSecret=None)
    assert problem == (
        "spec.checkpoints.credentialsSecret: required, because policy.allowAmbientCredentials is false and "
        "spec.model.uri uses S3 (s3://models/tiny); name a Secret with this namespace's S3 credentials"
    )
    ambient = Policy(allow_ambient_credentials=True)
    assert _problems(ambient, checkpoints__credentialsSecret=None) == []


def test_every_s3_location_is_found() -> None:
    spec = parse_spec(spec_dict())
    assert [field for field, _ in s3_uris(spec)] == [
        "spec.model.uri",
        "spec.dataset.uri",
        "spec.checkpoints.uri",
        "spec.output.uri",
    ]
    raw = spec_dict()
    raw["model"] = {"name": "HuggingFaceTB/SmolLM2-135M", "chatTemplate": "chatml"}
    raw["dataset"]["uri"] = "/data/chat.jsonl"
    raw["checkpoints"] = {"uri": "/ckpt"}
    raw["output"]["uri"] = "pvc://models/chat"
    assert s3_uris(parse_spec(raw)) == []
    assert policy_problems(parse_spec(raw), "team-a", Policy(allow_ambient_credentials=False)) == []
