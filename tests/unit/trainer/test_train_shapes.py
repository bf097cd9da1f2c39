"""ShareGPT, asChat and system-prompted rows in a mixture, through the trainer's production path on the
tiny model: the text and loss mask each shape becomes, token by token, and a run to the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.data.example_view import LOSS_END, LOSS_START
from kubesft_trainer.train import prepare
from testing.tinymodel import chat_rows
from tests.support.chat_labels import expected_tokens
from tests.support.data import qa_rows, shape_mixture
from tests.support.trainer import run_trainer, summary, trainer_config, write_config

pytestmark = pytest.mark.slow

SYSTEM = "You answer briefly."


def _config(model: Path, tmp_path: Path, **dataset: Any) -> dict[str, Any]:
    chat = [{"messages": r["messages"][1:]} for r in chat_rows(20)]
    mixture = shape_mixture(tmp_path, sharegpt=16, qa=40, qa_max=24, chat=chat, chat_weight=None)
    raw = trainer_config(
        model, tmp_path / "unused.jsonl", tmp_path / "out", training={"assistantOnlyLoss": True}
    )
    raw["dataset"] = {"mixture": mixture, "systemPrompt": SYSTEM, **dataset}
    return raw


def _expected_messages(origin: int, row: dict[str, Any]) -> list[dict[str, str]]:
    """What each source's row must have become, found by the row's turns after the system one."""
    turns = row["messages"][1:]
    if origin == 1:
        answer = next(r["answer"] for r in qa_rows(40) if r["question"] == turns[0]["content"])
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": turns[0]["content"]},
            {"role": "assistant", "content": answer},
        ]
    rows = chat_rows(16) if origin == 0 else chat_rows(20)
    source = next(r["messages"] for r in rows if r["messages"][1:] == turns)
    return source if origin == 0 else [{"role": "system", "content": SYSTEM}, *source[1:]]


def test_each_shape_renders_and_masks_token_by_token(model: Path, tmp_path: Path) -> None:
    env = RuntimeEnv.from_environ({"KUBESFT_WORK_DIR": str(tmp_path / "work")})
    config = TrainerConfig.model_validate(_config(model, tmp_path))
    run = prepare(config, env, tmp_path / "ckpt", callbacks=[], progress_bar=False)
    assert [(s.format, s.train_rows) for s in run.data.sources] == [
        ("sharegpt", 32),
        ("prompt-completion as chat", 24),
        ("messages", 20),
    ]
    checked = [0, 0, 0]
    for position, origin in enumerate(run.data.origins):
        if checked[origin] == 3:
            continue
        row = run.trainer.train_dataset[position]
        messages = _expected_messages(origin, run.data.train[position])
        ids, trained = expected_tokens(run.tokenizer, messages)
        assert row["input_ids"] == ids, f"source {origin}: the rendered text"
        assert [label != -100 for label in row["labels"]] == trained, f"source {origin}: the loss mask"
        assert all(label in (-100, token) for label, token in zip(row["labels"], ids, strict=True))
        checked[origin] += 1
    assert checked == [3, 3, 3]


def test_a_mixture_validates_with_an_example_per_source_and_trains_to_the_end(
    model: Path, tmp_path: Path
) -> None:
    raw = _config(model, tmp_path, evalFraction=0.1)
    raw["training"].update({"maxSteps": 8})
    config = write_config(tmp_path / "c.yaml", raw)
    checked = run_trainer(config, tmp_path / "work", "--validate")
    assert checked.returncode == 0, checked.stderr[-3000:]
    for index, header in enumerate(["(sharegpt)", "(prompt-completion as chat)", "(messages)"], start=1):
        assert f"Source {index} of 3: " in checked.stdout and header in checked.stdout
    assert checked.stdout.count("First training example:") == 3
    assert f"<|im_start|>system\n{SYSTEM}<|im_end|>" in checked.stdout
    assert checked.stdout.count(LOSS_START) >= 3 and f"<|im_end|>{LOSS_END}" in checked.stdout

    result = run_trainer(config, tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    facts = summary(tmp_path / "out")
    assert facts["globalStep"] == 8
    assert [(s["format"], s["trainRows"], s["evalRows"]) for s in facts["sources"]] == [
        ("sharegpt", 28, 2),
        ("prompt-completion as chat", 22, 2),
        ("messages", 18, 2),
    ]
    assert facts["trainRows"] == 68 and facts["evalRows"] == 6
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| source | revision | format | training rows | evaluation rows |" in card
    assert f"| `{tmp_path / 'qa.jsonl'}` | n/a | prompt-completion as chat | 22 | 2 |" in card
