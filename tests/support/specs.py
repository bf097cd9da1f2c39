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
        "model-name-and-uri",
        with_changes(model__uri="s3://models/tiny"),
        "spec.model.uri: set either name or uri, not both",
    ),
    ("model-neither", with_changes(model__name=None), "spec.model.name: set one of name or uri"),
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
        "eval-both",
        with_changes(dataset__evalSplit="test", dataset__evalFraction=0.1),
        "spec.dataset.evalFraction: set either evalSplit or evalFraction, not both",
    ),
    (
        "subset-without-hub",
        with_changes(dataset__subset="everyday"),
        "spec.dataset.subset: applies to hub datasets only",
    ),
    (
        "padding-free",
        with_changes(training__paddingFree=True),
        "spec.training.paddingFree: needs packing: true",
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
        "qlora-without-lora",
        with_changes(lora={"quantization": "4bit"}),
        "spec.lora.quantization: needs lora.enabled: true",
    ),
    (
        "assistant-loss-on-text",
        with_changes(dataset__format="text", training__assistantOnlyLoss=True),
        "spec.training.assistantOnlyLoss: needs conversational data",
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
"""Bad specs that the CRD's OpenAPI schema admits, so only the webhook can refuse them: the
admission tests apply each to the API server, and the spec model's tests parse each."""
