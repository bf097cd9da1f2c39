"""Training data: formats, files, field mapping, hold-out and sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesft_trainer.errors import DataError
from testing.tinymodel import chat_rows, prompt_completion_rows, text_rows, write_jsonl
from tests.support.data import load


def test_formats_are_detected_from_the_columns(tmp_path: Path) -> None:
    conversational_pc = [
        {
            "prompt": [{"role": "user", "content": "Hi?"}],
            "completion": [{"role": "assistant", "content": "Hi."}],
        }
    ] * 4
    cases = {
        "messages": chat_rows(5),
        "prompt-completion": prompt_completion_rows(5),
        "text": text_rows(5),
    }
    for expected, rows in cases.items():
        data = load(tmp_path, uri=str(write_jsonl(tmp_path / f"{expected}.jsonl", rows)))
        assert data.row_format == expected
        assert len(data.train) == 5
    data = load(tmp_path, uri=str(write_jsonl(tmp_path / "pc-chat.jsonl", conversational_pc)))
    assert data.row_format == "prompt-completion" and data.conversational
    plain = load(tmp_path, uri=str(tmp_path / "prompt-completion.jsonl"))
    assert not plain.conversational


def test_field_names_are_mapped_to_trl_columns_and_other_columns_dropped(tmp_path: Path) -> None:
    rows = [{"conversation": row["messages"], "id": i, "source": "x"} for i, row in enumerate(chat_rows(4))]
    data = load(tmp_path, uri=str(write_jsonl(tmp_path / "d.jsonl", rows)), messagesField="conversation")
    assert data.train.column_names == ["messages"]
    assert data.train[0]["messages"] == chat_rows(4)[0]["messages"]

    rows = [{"question": r["prompt"], "answer": r["completion"]} for r in prompt_completion_rows(3)]
    data = load(
        tmp_path,
        uri=str(write_jsonl(tmp_path / "qa.jsonl", rows)),
        format="prompt-completion",
        promptField="question",
        completionField="answer",
    )
    assert sorted(data.train.column_names) == ["completion", "prompt"]
    assert data.train[2]["completion"] == rows[2]["answer"]


def test_jsonl_json_parquet_and_csv_give_the_same_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = prompt_completion_rows(6)
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    lines = ["prompt,completion"] + [f'"{r["prompt"]}","{r["completion"]}"' for r in rows]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    write_jsonl(tmp_path / "rows.jsonl", rows)
    for suffix in ("jsonl", "json", "parquet", "csv"):
        data = load(tmp_path, uri=str(tmp_path / f"rows.{suffix}"))
        assert data.row_format == "prompt-completion", suffix
        assert [dict(r) for r in data.train] == rows, suffix


def test_a_folder_of_split_files_gives_train_and_eval_splits(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    write_jsonl(folder / "train-00000.jsonl", chat_rows(6, seed=1))
    write_jsonl(folder / "train-00001.jsonl", chat_rows(4, seed=2))
    write_jsonl(folder / "test.jsonl", chat_rows(3, seed=3))
    data = load(tmp_path, uri=str(folder), evalSplit="test")
    assert len(data.train) == 10
    assert data.eval is not None and len(data.eval) == 3
    assert data.eval[0]["messages"] == chat_rows(3, seed=3)[0]["messages"]

    unsplit = tmp_path / "unsplit"
    write_jsonl(unsplit / "part-a.jsonl", chat_rows(2))
    write_jsonl(unsplit / "part-b.jsonl", chat_rows(3))
    assert len(load(tmp_path, uri=str(unsplit)).train) == 5


def test_eval_fraction_holds_out_a_seeded_disjoint_share(tmp_path: Path) -> None:
    rows = [{"text": f"document {i}"} for i in range(40)]
    uri = str(write_jsonl(tmp_path / "t.jsonl", rows))
    first = load(tmp_path, uri=uri, evalFraction=0.25, seed=7)
    again = load(tmp_path, uri=uri, evalFraction=0.25, seed=7)
    other = load(tmp_path, uri=uri, evalFraction=0.25, seed=8)
    assert first.eval is not None and again.eval is not None and other.eval is not None
    train, held = set(first.train["text"]), set(first.eval["text"])
    assert len(held) == 10 and len(train) == 30 and not train & held
    assert held == set(again.eval["text"])
    assert held != set(other.eval["text"])


def test_max_samples_takes_a_seeded_subset(tmp_path: Path) -> None:
    uri = str(write_jsonl(tmp_path / "t.jsonl", [{"text": f"document {i}"} for i in range(50)]))
    first = load(tmp_path, uri=uri, maxSamples=8, seed=3)
    assert len(first.train) == 8
    assert first.train["text"] == load(tmp_path, uri=uri, maxSamples=8, seed=3).train["text"]
    assert first.train["text"] != [f"document {i}" for i in range(8)]


def test_unknown_columns_and_missing_files_say_what_is_expected(tmp_path: Path) -> None:
    uri = str(write_jsonl(tmp_path / "odd.jsonl", [{"question": "a", "reply": "b"}]))
    with pytest.raises(DataError, match=r"cannot tell the format from the columns question, reply"):
        load(tmp_path, uri=uri)
    with pytest.raises(DataError, match=r"format messages needs column\(s\) messages"):
        load(tmp_path, uri=uri, format="messages")
    with pytest.raises(DataError, match=r"dataset.uri: .*missing.jsonl does not exist"):
        load(tmp_path, uri=str(tmp_path / "missing.jsonl"))
    valid = str(write_jsonl(tmp_path / "chat.jsonl", chat_rows(3)))
    with pytest.raises(DataError, match=r"single file, so it has no 'test' split; use evalFraction"):
        load(tmp_path, uri=valid, evalSplit="test")


def test_assistant_only_loss_refuses_plain_prompt_completion_data(tmp_path: Path) -> None:
    uri = str(write_jsonl(tmp_path / "pc.jsonl", prompt_completion_rows(4)))
    with pytest.raises(DataError, match=r"training.assistantOnlyLoss: needs conversational data"):
        load(tmp_path, assistant_only=True, uri=uri)


def test_eval_fraction_is_held_out_of_the_max_samples_rows(tmp_path: Path) -> None:
    uri = str(write_jsonl(tmp_path / "t.jsonl", [{"text": f"document {i}"} for i in range(200)]))
    data = load(tmp_path, uri=uri, maxSamples=40, evalFraction=0.25, seed=5)
    assert data.eval is not None
    assert (len(data.train), len(data.eval)) == (30, 10), "maxSamples caps the rows both come from"
    sampled = set(load(tmp_path, uri=uri, maxSamples=40, seed=5).train["text"])
    assert set(data.train["text"]) | set(data.eval["text"]) == sampled


def test_max_eval_samples_caps_the_evaluation_rows_whatever_their_source(tmp_path: Path) -> None:
    rows = [{"text": f"document {i}"} for i in range(60)]
    uri = str(write_jsonl(tmp_path / "t.jsonl", rows))
    held = load(tmp_path, uri=uri, evalFraction=0.5, maxEvalSamples=7)
    assert held.eval is not None and (len(held.train), len(held.eval)) == (53, 7), "the rest stay in training"
    folder = tmp_path / "split"
    write_jsonl(folder / "train.jsonl", rows[:10])
    write_jsonl(folder / "test.jsonl", rows)
    split = load(tmp_path, uri=str(folder), evalSplit="test", maxEvalSamples=5, seed=1)
    assert split.eval is not None and len(split.eval) == 5
    assert split.eval["text"] != [row["text"] for row in rows[:5]], "a seeded random subset"
    whole = load(tmp_path, uri=str(folder), evalSplit="test", maxEvalSamples=0)
    assert whole.eval is not None and len(whole.eval) == 60, "0 means all"
    default = load(tmp_path, uri=str(folder), evalSplit="test")
    assert default.eval is not None and len(default.eval) == 60, "under the default cap of 1000"
