"""The static checks admission makes on every SFTJob: each problem refused with its field named,
and every problem of a spec in the same answer."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubesft_api.sftjob import InvalidSpecError, parse_spec
from kubesft_operator.crd import build_crd
from tests.support.specs import with_changes


def problems(spec: dict[str, Any]) -> list[str]:
    try:
        parse_spec(spec)
    except InvalidSpecError as error:
        return error.problems
    return []


BROKEN_TEMPLATE = "{% for message in messages %}\n{{ message['content'] }<|end|>\n{% endfor %}"


def test_chat_template_that_does_not_parse_is_refused_naming_the_line() -> None:
    (problem,) = problems(with_changes(model__chatTemplate=BROKEN_TEMPLATE, model__eosToken="<|end|>"))
    assert problem.startswith("spec.model.chatTemplate: the template does not parse as Jinja: line 2:")
    assert "unexpected '}'" in problem


def test_unclosed_block_in_a_chat_template_is_refused() -> None:
    template = "{% for message in messages %}\n{{ message['content'] }}<|end|>\n"
    (problem,) = problems(with_changes(model__chatTemplate=template, model__eosToken="<|end|>"))
    assert "spec.model.chatTemplate: the template does not parse as Jinja: line" in problem
    assert "endfor" in problem


def test_chat_template_with_generation_markers_and_loop_controls_parses() -> None:
    template = (
        "{% for message in messages %}{% if message['role'] == 'assistant' %}{% generation %}"
        "{{ message['content'] }}<|end|>{% endgeneration %}{% else %}{{ message['content'] }}<|end|>"
        "{% endif %}{% if loop.index > 100 %}{% break %}{% endif %}{% endfor %}"
    )
    assert problems(with_changes(model__chatTemplate=template)) == []


@pytest.mark.parametrize(
    ("field", "uri", "shown"),
    [
        ("dataset__uri", "s3://bucket/data/../other/train.jsonl", "a '..'"),
        ("output__uri", "s3://bucket//out", "an empty"),
        ("checkpoints__uri", "s3://bucket/./ckpt", "a '.'"),
        ("checkpoints__resumeFrom", "s3://bucket/ckpt/..", "a '..'"),
        ("output__uri", "pvc://claim/../escape", "a '..'"),
    ],
)
def test_uri_with_empty_dot_or_dotdot_segments_is_refused(field: str, uri: str, shown: str) -> None:
    (problem,) = problems(with_changes(**{field: uri}))
    path = "spec." + field.replace("__", ".")
    assert problem == f"{path}: '{uri}' has {shown} path segment; write the key without '//', '.' or '..'"


@pytest.mark.parametrize(
    "uri", ["s3://bucket/out/", "s3://bucket", "s3://bucket/a.b/...c/.hidden", "/data/../out"]
)
def test_uri_with_a_trailing_slash_or_dots_inside_names_is_accepted(uri: str) -> None:
    assert problems(with_changes(output__uri=uri)) == []


def test_endpoint_url_with_user_information_is_refused() -> None:
    (problem,) = problems(with_changes(checkpoints__endpointUrl="https://minio:hunter2@minio.local:9000"))
    assert problem.startswith("spec.checkpoints.endpointUrl: must not contain user information")
    assert "credentialsSecret" in problem


def test_endpoint_url_without_user_information_is_accepted() -> None:
    assert problems(with_changes(checkpoints__endpointUrl="http://minio.local:9000/path@v1")) == []


@pytest.mark.parametrize(
    "name",
    [
        "WANDB_API_KEY",
        "OPENAI_KEY",
        "KEY",
        "AWS_ACCESS_KEY_ID",
        "DB_PASSWORD",
        "PASSPHRASE",
        "GITHUB_TOKEN",
        "HF_TOKEN",
        "CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "my_api_key",
    ],
)
def test_literal_value_of_a_secret_like_name_is_refused(name: str) -> None:
    (problem,) = problems(with_changes(resources={"env": [{"name": name, "value": "x"}]}))
    assert problem.startswith(f"spec.resources.env[0].value: {name} looks like a secret")
    assert "valueFrom.secretKeyRef" in problem


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS", "KEYBOARD_LAYOUT", "MONKEY"])
def test_literal_value_of_an_ordinary_name_is_accepted(name: str) -> None:
    assert problems(with_changes(resources={"env": [{"name": name, "value": "1"}]})) == []


def test_secret_like_name_from_a_secret_reference_is_accepted() -> None:
    env = [{"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "key"}}}]
    assert problems(with_changes(resources={"env": env})) == []


def test_every_problem_of_a_spec_comes_in_one_answer_each_naming_its_field() -> None:
    spec = with_changes(
        model__chatTemplate=BROKEN_TEMPLATE,
        model__eosToken="<|end|>",
        dataset__uri="s3://bucket/data/../train.jsonl",
        checkpoints__endpointUrl="https://user:pw@minio:9000",
        output__uri="s3://bucket//out",
        resources={"env": [{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "API_TOKEN", "value": "t"}]},
    )
    fields = sorted(problem.split(":", 1)[0] for problem in problems(spec))
    assert fields == [
        "spec.checkpoints.endpointUrl",
        "spec.dataset.uri",
        "spec.model.chatTemplate",
        "spec.output.uri",
        "spec.resources.env[1].value",
    ]


def _cel_rules(node: Any, path: str = "") -> dict[str, list[str]]:
    """Every x-kubernetes-validations rule of the CRD schema, by schema path."""
    found: dict[str, list[str]] = {}
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations", []):
            found.setdefault(path, []).append(rule["rule"])
        for key, value in node.items():
            for sub, rules in _cel_rules(value, f"{path}/{key}").items():
                found.setdefault(sub, []).extend(rules)
    return found


def test_the_crd_carries_cel_rules_for_the_checks_cel_can_express() -> None:
    """The API server enforces these even when the webhook is down (``failurePolicy: Ignore``)."""
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = _cel_rules(schema)
    uri_rules = [path for path, found in rules.items() if any("(s3|pvc)://" in r for r in found)]
    assert {p.split("/properties/")[-2] + "." + p.rsplit("/", 1)[-1] for p in uri_rules} >= {
        "model.uri",
        "dataset.uri",
        "checkpoints.uri",
        "checkpoints.resumeFrom",
        "output.uri",
    }
    assert any("@" in r for p, found in rules.items() if p.endswith("endpointUrl") for r in found)
    assert any("secretKeyRef" not in r and "TOKEN" in r for found in rules.values() for r in found)


@pytest.mark.parametrize(
    ("uri", "refused"),
    [
        ("s3://bucket/a/../b", True),
        ("s3://bucket//b", True),
        ("s3://bucket/a/./b", True),
        ("s3://bucket/a/..", True),
        ("pvc://claim/..", True),
        ("s3://bucket/a/", False),
        ("s3://bucket/a/...b/.c", False),
        ("/local/../path", False),
    ],
)
def test_the_cel_segment_rule_agrees_with_the_webhook(uri: str, refused: bool) -> None:
    """CEL's ``matches`` is an RE2 search, which Python's ``re.search`` agrees with on this rule."""
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rule = schema["properties"]["spec"]["properties"]["output"]["properties"]["uri"][
        "x-kubernetes-validations"
    ]
    (pattern,) = re.findall(r"matches\('(.*)'\)", rule[0]["rule"])
    cel_refuses = re.search(pattern.replace("\\\\", "\\"), uri) is not None
    assert cel_refuses == refused
    assert bool(problems(with_changes(output__uri=uri))) == refused
