"""Which prompts the model answers before and after training, and a resumed run's answers before."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from datasets import Dataset

from kubesft_api.evaluation import EvaluationSettings
from kubesft_trainer.reporting.samples import BEFORE_FILE, Prompt, SampleAnswer, SampleRun, choose_prompts
from testing.tinymodel import chat_rows, prompt_completion_rows, text_rows


def test_prompts_are_the_turns_before_the_first_answer_of_the_evaluation_rows_first() -> None:
    train, evaluation = Dataset.from_list(chat_rows(6, seed=1)), Dataset.from_list(chat_rows(6, seed=2))
    prompts = choose_prompts(EvaluationSettings(), train, evaluation, chat=True)
    expected = [row["messages"][:2] for row in chat_rows(3, seed=2)]
    assert [p.messages for p in prompts] == expected
    assert [p.shown for p in prompts] == [m[1]["content"] for m in expected]
    assert len(choose_prompts(EvaluationSettings(sample_count=2), train, None, chat=True)) == 2
    assert choose_prompts(EvaluationSettings(sample_count=0), train, evaluation, chat=True) == []


def test_prompt_completion_rows_give_their_prompts_and_text_rows_none() -> None:
    plain = choose_prompts(
        EvaluationSettings(), Dataset.from_list(prompt_completion_rows(4)), None, chat=True
    )
    assert [p.text for p in plain] == [row["prompt"] for row in prompt_completion_rows(3)]
    conversational = [
        {"prompt": row["messages"][:2], "completion": row["messages"][2:3]} for row in chat_rows(3)
    ]
    turns = choose_prompts(EvaluationSettings(), Dataset.from_list(conversational), None, chat=True)
    assert [p.messages for p in turns] == [row["prompt"] for row in conversational]
    assert choose_prompts(EvaluationSettings(), Dataset.from_list(text_rows(4)), None, chat=True) == []


def test_sample_prompts_are_user_turns_with_a_chat_template_and_text_without() -> None:
    settings = EvaluationSettings(sample_prompts=["Say hi.", "Count to 3."])
    rows = Dataset.from_list(text_rows(4))
    chat = choose_prompts(settings, rows, None, chat=True)
    assert [p.messages for p in chat] == [
        [{"role": "user", "content": "Say hi."}],
        [{"role": "user", "content": "Count to 3."}],
    ]
    assert [p.text for p in choose_prompts(settings, rows, None, chat=False)] == ["Say hi.", "Count to 3."]


def _run(prompts: list[Prompt], max_new_tokens: int = 16) -> SampleRun:
    # Taking the answers from a checkpoint needs no model, tokenizer or stop tokens.
    return SampleRun(prompts, cast(Any, None), cast(Any, None), max_new_tokens)


PROMPTS = [
    Prompt(shown="Say hi.", messages=[{"role": "user", "content": "Say hi."}]),
    Prompt(shown="x", text="x"),
]


def _checkpoint(tmp_path: Path, answered: SampleRun) -> Path:
    folder = tmp_path / "checkpoint-8"
    folder.mkdir()
    (folder / BEFORE_FILE).write_bytes(answered.before_record())
    return folder


def test_a_resumed_run_takes_the_answers_before_training_from_its_checkpoint(tmp_path: Path) -> None:
    first = _run(PROMPTS)
    first.answers = [
        SampleAnswer(prompt="Say hi.", before="hello", before_stopped=True),
        SampleAnswer(prompt="x", before="y"),
    ]
    resumed = _run(PROMPTS)
    assert resumed.take_before(_checkpoint(tmp_path, first))
    assert resumed.answers == first.answers
    assert resumed.answers is not first.answers


def test_answers_to_other_prompts_or_another_token_limit_are_not_taken(tmp_path: Path) -> None:
    first = _run(PROMPTS)
    first.answers = [SampleAnswer(prompt="Say hi.", before="hello"), SampleAnswer(prompt="x", before="y")]
    folder = _checkpoint(tmp_path, first)
    assert not _run(PROMPTS[:1]).take_before(folder)
    assert not _run([PROMPTS[0], Prompt(shown="x", text="z")]).take_before(folder)
    longer = _run(PROMPTS, max_new_tokens=32)
    assert not longer.take_before(folder) and longer.answers == []
    assert not _run(PROMPTS).take_before(tmp_path / "checkpoint-without-the-file")


def test_an_unreadable_record_is_answered_again_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    (folder / BEFORE_FILE).write_text('{"prompts": [')
    run = _run(PROMPTS)
    assert not run.take_before(folder) and run.answers == []
    assert f"{BEFORE_FILE} in checkpoint-4 is unreadable" in caplog.text
