"""ShareGPT conversations, prompt-completion rows as chats, a system prompt, and mixtures of sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesft_trainer.errors import DataError
from testing.tinymodel import chat_rows, prompt_completion_rows, text_rows, write_jsonl
from tests.support.data import load, qa_rows, shape_mixture, sharegpt_rows


def test_sharegpt_rows_are_detected_and_become_messages(tmp_path: Path) -> None:
    data = load(tmp_path, uri=str(write_jsonl(tmp_path / "s.jsonl", sharegpt_rows(6))))
    assert data.row_format == "messages"
    assert data.sources[0].format == "sharegpt"
    assert [row["messages"] for row in data.train] == [row["messages"] for row in chat_rows(6)]


def test_sharegpt_speakers_map_through_dataset_roles(tmp_path: Path) -> None:
    rows = [
        {
            "chat": [
                {"from": "customer", "value": "Where is my tea?"},
                {"from": "agent", "value": "On its way."},
            ]
        }
    ] * 3
    data = load(
        tmp_path,
        uri=str(write_jsonl(tmp_path / "s.jsonl", rows)),
        format="sharegpt",
        messagesField="chat",
        roles={"customer": "user", "agent": "assistant"},
    )
    assert data.train[0]["messages"] == [
        {"role": "user", "content": "Where is my tea?"},
        {"role": "assistant", "content": "On its way."},
    ]


@pytest.mark.parametrize(
    ("turn", "problem"),
    [
        (
            {"from": "bot", "value": "Hi."},
            "row 4: conversations[1].from is 'bot', expected one of human, gpt, system",
        ),
        ({"from": "gpt", "value": "  "}, "row 4: conversations[1].value is empty"),
        ({"from": "gpt"}, "row 4: conversations[1].value is missing"),
        ({"value": "Hi."}, "row 4: conversations[1].from is missing"),
    ],
)
def test_a_bad_sharegpt_turn_is_named_by_row_and_turn(
    tmp_path: Path, turn: dict[str, str], problem: str
) -> None:
    rows = sharegpt_rows(8)
    rows[4]["conversations"][1] = turn
    with pytest.raises(DataError, match="1 of 8 rows are invalid") as info:
        load(tmp_path, uri=str(write_jsonl(tmp_path / "s.jsonl", rows)), format="sharegpt")
    assert problem in str(info.value)


def test_sharegpt_without_a_speaker_mapped_to_assistant_is_refused_for_assistant_only_loss(
    tmp_path: Path,
) -> None:
    rows = sharegpt_rows(4)
    rows[2]["conversations"] = [turn for turn in rows[2]["conversations"] if turn["from"] != "gpt"]
    with pytest.raises(DataError, match="row 2: conversations has no assistant turn"):
        load(tmp_path, assistant_only=True, uri=str(write_jsonl(tmp_path / "s.jsonl", rows)))


def test_as_chat_makes_each_row_a_user_and_an_assistant_turn_after_the_system_prompt(tmp_path: Path) -> None:
    rows = qa_rows(5)
    data = load(
        tmp_path,
        assistant_only=True,
        uri=str(write_jsonl(tmp_path / "qa.jsonl", rows)),
        promptField="question",
        completionField="answer",
        asChat=True,
        systemPrompt="You solve arithmetic.",
    )
    assert data.row_format == "messages" and data.conversational
    assert data.sources[0].format == "prompt-completion as chat"
    assert data.train[3]["messages"] == [
        {"role": "system", "content": "You solve arithmetic."},
        {"role": "user", "content": rows[3]["question"]},
        {"role": "assistant", "content": rows[3]["answer"]},
    ]


def test_as_chat_names_an_empty_answer(tmp_path: Path) -> None:
    rows = qa_rows(5)
    rows[2]["answer"] = ""
    with pytest.raises(DataError, match="row 2: answer is empty or not a string"):
        load(
            tmp_path,
            uri=str(write_jsonl(tmp_path / "qa.jsonl", rows)),
            promptField="question",
            completionField="answer",
            asChat=True,
        )


def test_as_chat_on_conversational_data_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"dataset\.asChat: turns prompt-completion rows into chats; the rows are messages"
    ):
        load(tmp_path, uri=str(write_jsonl(tmp_path / "c.jsonl", chat_rows(3))), asChat=True)


def test_a_system_prompt_is_added_where_missing_and_replaces_only_when_asked(tmp_path: Path) -> None:
    rows = chat_rows(4)
    rows[1]["messages"] = rows[1]["messages"][1:]
    path = str(write_jsonl(tmp_path / "c.jsonl", rows))
    kept = load(tmp_path, uri=path, systemPrompt="Answer in French.")
    assert kept.train[0]["messages"] == rows[0]["messages"]
    assert kept.train[1]["messages"] == [
        {"role": "system", "content": "Answer in French."},
        *rows[1]["messages"],
    ]
    replaced = load(tmp_path, uri=path, systemPrompt="Answer in French.", systemPromptMode="replace")
    for index, row in enumerate(replaced.train):
        assert row["messages"][0] == {"role": "system", "content": "Answer in French."}
        assert row["messages"][1:] == [t for t in rows[index]["messages"] if t["role"] != "system"]


def test_a_system_prompt_goes_into_conversational_prompts_and_is_refused_for_plain_strings(
    tmp_path: Path,
) -> None:
    rows = [
        {
            "prompt": [{"role": "user", "content": "Hi?"}],
            "completion": [{"role": "assistant", "content": "Hi."}],
        }
    ] * 3
    data = load(tmp_path, uri=str(write_jsonl(tmp_path / "pc.jsonl", rows)), systemPrompt="Be kind.")
    assert data.train[0]["prompt"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi?"},
    ]
    assert data.train[0]["completion"] == [{"role": "assistant", "content": "Hi."}]
    plain = str(write_jsonl(tmp_path / "plain.jsonl", prompt_completion_rows(3)))
    with pytest.raises(DataError, match=r"dataset\.systemPrompt: needs conversational data.*set asChat"):
        load(tmp_path, uri=plain, systemPrompt="Be kind.")


def _mixture(tmp_path: Path) -> list[dict[str, Any]]:
    return shape_mixture(tmp_path, sharegpt=10, qa=20, qa_max=8, chat=chat_rows(12, seed=4), chat_weight=0.5)


def test_a_mixture_takes_each_source_by_weight_or_max_samples_shuffled_together(tmp_path: Path) -> None:
    data = load(tmp_path, mixture=_mixture(tmp_path), systemPrompt="Be brief.")
    assert [(s.format, s.train_rows, s.eval_rows) for s in data.sources] == [
        ("sharegpt", 20, None),
        ("prompt-completion as chat", 8, None),
        ("messages", 6, None),
    ]
    assert len(data.train) == 34 and sorted(data.origins) == [0] * 20 + [1] * 8 + [2] * 6
    assert data.origins != sorted(data.origins), "the sources are shuffled together"
    sharegpt_texts = [
        row["messages"] for row, origin in zip(data.train, data.origins, strict=True) if origin == 0
    ]
    expected = [r["messages"] for r in chat_rows(10)]
    assert sorted(map(str, sharegpt_texts)) == sorted(map(str, expected * 2)), "weight 2: every row twice"
    qa = [row["messages"] for row, origin in zip(data.train, data.origins, strict=True) if origin == 1]
    assert all(turns[0] == {"role": "system", "content": "Be brief."} for turns in qa)
    again = load(tmp_path, mixture=_mixture(tmp_path), systemPrompt="Be brief.")
    assert again.origins == data.origins and list(again.train) == list(data.train), "the seed fixes the order"


def test_a_mixture_holds_evaluation_rows_out_of_each_source(tmp_path: Path) -> None:
    data = load(tmp_path, mixture=_mixture(tmp_path), evalFraction=0.25)
    assert [(s.train_rows, s.eval_rows) for s in data.sources] == [(16, 2), (6, 2), (4, 2)]
    assert data.eval is not None and len(data.eval) == 6
    held = {str(row["messages"]) for row in data.eval}
    assert not held & {str(row["messages"]) for row in data.train}, "held-out rows are not trained on"


def test_a_bad_row_in_a_mixture_names_its_source(tmp_path: Path) -> None:
    mixture = _mixture(tmp_path)
    rows = sharegpt_rows(6, seed=9)
    rows[3]["conversations"][0]["from"] = "narrator"
    mixture[2] = {"uri": str(write_jsonl(tmp_path / "bad.jsonl", rows))}
    with pytest.raises(DataError) as info:
        load(tmp_path, mixture=mixture)
    message = str(info.value)
    assert "dataset.mixture[2]" in message and "row 3: conversations[0].from is 'narrator'" in message


def test_mixture_sources_of_different_row_formats_are_refused(tmp_path: Path) -> None:
    mixture = [
        {"uri": str(write_jsonl(tmp_path / "c.jsonl", chat_rows(4)))},
        {"uri": str(write_jsonl(tmp_path / "t.jsonl", text_rows(4)))},
    ]
    with pytest.raises(
        DataError, match=r"dataset.mixture: sources must become one row format; dataset.mixture\[0\]"
    ):
        load(tmp_path, mixture=mixture)
