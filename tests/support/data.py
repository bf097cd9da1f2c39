"""Training data loaded the way the trainer loads it, for the data tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.dataset import DatasetSource
from kubesft_trainer.data.loading import PreparedData, load_data
from testing.tinymodel import chat_rows, prompt_completion_rows, write_jsonl

SETTINGS = CheckpointSettings()


def load(tmp_path: Path, assistant_only: bool = False, **source: object) -> PreparedData:
    """``load_data`` of a source given as spec fields (``uri=...``), cached under ``tmp_path``."""
    return load_data(DatasetSource(**source), assistant_only, SETTINGS, tmp_path / "cache", hf_token=None)


SPEAKERS = {"system": "system", "user": "human", "assistant": "gpt"}


def sharegpt_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """chat_rows in ShareGPT's shape: conversations of from/value turns."""
    return [
        {"conversations": [{"from": SPEAKERS[t["role"]], "value": t["content"]} for t in row["messages"]]}
        for row in chat_rows(count, seed)
    ]


def qa_rows(count: int) -> list[dict[str, str]]:
    """prompt_completion_rows as a question/answer dataset such as GSM8K has."""
    return [
        {"question": r["prompt"], "answer": r["completion"].strip()} for r in prompt_completion_rows(count)
    ]


def shape_mixture(
    folder: Path, sharegpt: int, qa: int, qa_max: int, chat: list[dict[str, Any]], chat_weight: float | None
) -> list[dict[str, Any]]:
    """A dataset.mixture of the three shapes: ShareGPT rows taken twice, question/answer rows as chats
    (at most ``qa_max``), and ``chat`` rows in messages format."""
    last: dict[str, Any] = {"uri": str(write_jsonl(folder / "chat.jsonl", chat))}
    if chat_weight is not None:
        last["weight"] = chat_weight
    return [
        {"uri": str(write_jsonl(folder / "share.jsonl", sharegpt_rows(sharegpt))), "weight": 2},
        {
            "uri": str(write_jsonl(folder / "qa.jsonl", qa_rows(qa))),
            "promptField": "question",
            "completionField": "answer",
            "asChat": True,
            "maxSamples": qa_max,
        },
        last,
    ]
