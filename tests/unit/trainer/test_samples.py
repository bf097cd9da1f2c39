"""Which prompts the model answers before and after training."""

from __future__ import annotations

from datasets import Dataset

from kubesft_api.evaluation import EvaluationSettings
from kubesft_trainer.reporting.samples import choose_prompts
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
