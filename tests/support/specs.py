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
