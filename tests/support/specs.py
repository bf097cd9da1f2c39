"""A valid SFTJob spec, and copies of it with a few fields changed, for admission and model tests."""

from __future__ import annotations

import copy
from typing import Any

VALID: dict[str, Any] = {
    "model": {"name": "HuggingFaceTB/SmolLM2-135M", "chatTemplate": "chatml"},
    "dataset": {"uri": "s3://bucket/data/train.jsonl"},
    "training": {"maxSteps": 10},
    "checkpoints": {"uri": "s3://bucket/ckpt", "credentialsSecret": {"name": "s3"}},
    "output": {"uri": "s3://bucket/out"},
}


def with_changes(**paths: Any) -> dict[str, Any]:
    """VALID with dotted paths set (``None`` removes the key)."""
    return changed(VALID, **paths)


def changed(base: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A copy of ``base`` with dotted paths (``a__b``) set; ``None`` removes the key."""
    spec = copy.deepcopy(base)
    for dotted, value in paths.items():
        *parents, leaf = dotted.split("__")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return spec


WEBHOOK_BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    (
        "model-scheme",
        with_changes(model__name=None, model__uri="gs://bucket/model"),
        "spec.model.uri: scheme 'gs://' is not supported",
    ),
    (
        "chat-template",
        with_changes(model__chatTemplate="llama"),
        "spec.model.chatTemplate: 'llama' is neither",
    ),
    (
        "extra-arg-typo",
        with_changes(training__extraArgs={"weight_decayy": 0.1}),
        "spec.training.extraArgs: 'weight_decayy' is not an SFTConfig argument (did you mean weight_decay?)",
    ),
    (
        "extra-arg-managed",
        with_changes(training__extraArgs={"learning_rate": 0.1}),
        "spec.training.extraArgs: 'learning_rate' is set by kubesft; use spec.training.learningRate",
    ),
    (
        "template-syntax",
        with_changes(model__chatTemplate="{% for m in messages %}\n{{ m.content }<|e|>\n{% endfor %}"),
        "spec.model.chatTemplate: the template does not parse as Jinja: line 2: unexpected '}'",
    ),
    (
        "operator-env",
        with_changes(resources={"env": [{"name": "KUBESFT_CONFIG", "value": "/tmp/x"}]}),
        "spec.resources.env[0].name: KUBESFT_CONFIG is set by kubesft",
    ),
    (
        "checkpoint-on-pvc",
        with_changes(checkpoints__uri="pvc://claim/ckpt"),
        "spec.checkpoints.uri: scheme 'pvc://'",
    ),
    ("no-output", with_changes(output={}), "spec.output.uri: required"),
]
"""Bad specs that the CRD's schema and CEL rules admit, so only the webhook can refuse them: the
admission tests apply each to the API server, and the spec model's tests parse each."""

_SOURCE = "s3://bucket/data/train.jsonl"
_TEXT = {"format": "text", "textField": "text"}

CEL_BAD_SPECS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "model-name-and-uri",
        with_changes(model__uri="s3://models/tiny"),
        "spec.model.uri",
        "set either name or uri, not both",
    ),
    ("model-neither", with_changes(model__name=None), "spec.model.name", "set one of name or uri"),
    ("dataset-neither", with_changes(dataset={}), "spec.dataset.name", "set one of name or uri"),
    (
        "eval-both",
        with_changes(dataset__evalSplit="test", dataset__evalFraction=0.1),
        "spec.dataset.evalFraction",
        "set either evalSplit or evalFraction, not both",
    ),
    (
        "subset-without-hub",
        with_changes(dataset__subset="everyday"),
        "spec.dataset.subset",
        "applies to hub datasets only",
    ),
    (
        "revision-without-hub",
        with_changes(dataset__revision="v2"),
        "spec.dataset.revision",
        "applies to hub datasets only",
    ),
    (
        "roles-on-messages",
        with_changes(dataset__format="messages", dataset__roles={"human": "user"}),
        "spec.dataset.roles",
        "maps ShareGPT speakers",
    ),
    (
        "as-chat-on-messages",
        with_changes(dataset__format="messages", dataset__asChat=True),
        "spec.dataset.asChat",
        "turns prompt-completion rows into chats",
    ),
    (
        "mixture-and-uri",
        with_changes(dataset__mixture=[{"uri": _SOURCE}]),
        "spec.dataset.uri",
        "set either mixture or a single source (name or uri), not both",
    ),
    (
        "mixture-entry-neither",
        with_changes(dataset={"mixture": [{"weight": 1.0}]}),
        "spec.dataset.mixture[0].name",
        "set one of name or uri",
    ),
    (
        "mixture-weight-and-cap",
        with_changes(dataset={"mixture": [{"uri": _SOURCE, "weight": 0.5, "maxSamples": 10}]}),
        "spec.dataset.mixture[0].maxSamples",
        "set either weight or maxSamples, not both",
    ),
    (
        "eval-set-named-heldout",
        with_changes(dataset__evalSets=[{"setName": "heldout", "uri": _SOURCE}]),
        "spec.dataset.evalSets[0].setName",
        "heldout names the held-out training rows",
    ),
    (
        "eval-set-name-and-uri",
        with_changes(dataset__evalSets=[{"setName": "general", "name": "org/general", "uri": _SOURCE}]),
        "spec.dataset.evalSets[0].uri",
        "set either name or uri, not both",
    ),
    (
        "padding-free",
        with_changes(training__paddingFree=True),
        "spec.training.paddingFree",
        "needs packing: true",
    ),
    (
        "qlora-without-lora",
        with_changes(lora={"quantization": "4bit"}),
        "spec.lora.quantization",
        "needs lora.enabled: true",
    ),
    (
        "sharded-qlora",
        with_changes(lora={"enabled": True, "quantization": "4bit"}, training__sharding="fsdp"),
        "spec.training.sharding",
        "cannot shard a",
    ),
    (
        "retention-without-eval-sets",
        with_changes(evaluation={"maxRetentionLossIncrease": 0.1}),
        "spec.evaluation.maxRetentionLossIncrease",
        "guards the sets of dataset.evalSets; there are none",
    ),
    (
        "assistant-loss-on-text",
        with_changes(dataset__format="text", training__assistantOnlyLoss=True),
        "spec.training.assistantOnlyLoss",
        "needs conversational data",
    ),
    (
        "assistant-loss-on-a-text-mixture-entry",
        with_changes(dataset={"mixture": [{"uri": _SOURCE, **_TEXT}]}, training__assistantOnlyLoss=True),
        "spec.training.assistantOnlyLoss",
        "needs conversational data",
    ),
    (
        "system-prompt-on-text",
        with_changes(dataset__format="text", dataset__systemPrompt="Be brief."),
        "spec.dataset.systemPrompt",
        "needs conversational data",
    ),
    (
        "env-value-and-value-from",
        with_changes(
            resources={
                "env": [
                    {"name": "RUN", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ]
            }
        ),
        "spec.resources.env[0].value",
        "set value or valueFrom, not both",
    ),
    (
        "env-two-sources",
        with_changes(
            resources={
                "env": [
                    {
                        "name": "RUN",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": "metadata.name"},
                            "configMapKeyRef": {"name": "settings", "key": "run"},
                        },
                    }
                ]
            }
        ),
        "spec.resources.env[0].valueFrom",
        "set exactly one of secretKeyRef, configMapKeyRef or fieldRef",
    ),
    (
        "env-from-both",
        with_changes(resources={"envFrom": [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]}),
        "spec.resources.envFrom[0]",
        "set exactly one of secretRef or configMapRef",
    ),
    (
        "dot-segment",
        with_changes(dataset__uri="s3://bucket/data/../train.jsonl"),
        "spec.dataset.uri",
        "segment",
    ),
    ("empty-segment", with_changes(output__uri="s3://bucket//out"), "spec.output.uri", "segment"),
    (
        "endpoint-user-info",
        with_changes(checkpoints__endpointUrl="https://user:hunter2@minio:9000"),
        "spec.checkpoints.endpointUrl",
        "user",
    ),
    (
        "inline-secret",
        with_changes(resources={"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "hunter2"}]}),
        "spec.resources.env[0].value",
        "secret",
    ),
]
"""Bad specs the API server refuses by itself, from the CEL rules the CRD carries (spec field,
and a part of the message both the API server's rule and the model's validator give): the
admission tests apply each with the webhook on and off, and the spec model's tests parse each."""
