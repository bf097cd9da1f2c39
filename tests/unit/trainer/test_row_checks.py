"""Row checks before training: every bad row named by its row in the file, and counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesft_trainer.errors import DataError
from testing.tinymodel import chat_rows, prompt_completion_rows, write_jsonl
from tests.support.data import load


def test_bad_rows_are_named_and_counted_before_training(tmp_path: Path) -> None:
    rows = chat_rows(12)
    rows[3]["messages"][1]["role"] = "bot"
    rows[5]["messages"][2]["content"] = "   "
    rows[8] = {"messages": None}
    rows[10]["messages"] = [m for m in rows[10]["messages"] if m["role"] != "assistant"]
    uri = str(write_jsonl(tmp_path / "chat.jsonl", rows))
    with pytest.raises(DataError) as caught:
        load(tmp_path, assistant_only=True, uri=uri)
    message = str(caught.value)
    assert "4 of 12 rows are invalid" in message
    assert "row 3: messages[1].role is 'bot'" in message
    assert "row 5: messages[2].content is empty" in message
    assert "row 8: missing field 'messages'" in message
    assert "row 10: messages has no assistant turn" in message
    assert uri in message
    # Without assistant-only loss a conversation without an assistant turn is still usable.
    with pytest.raises(DataError) as caught:
        load(tmp_path, uri=uri)
    assert "3 of 12 rows are invalid" in str(caught.value)


def test_bad_rows_in_a_sample_are_named_by_their_row_in_the_file(tmp_path: Path) -> None:
    rows = [{"text": f"document {i}"} for i in range(30)]
    rows[17]["text"] = ""
    uri = str(write_jsonl(tmp_path / "t.jsonl", rows))
    with pytest.raises(DataError, match=r"row 17: text is empty"):
        load(tmp_path, uri=uri, maxSamples=29, seed=1)


def test_prompt_completion_rows_must_be_consistent(tmp_path: Path) -> None:
    rows = prompt_completion_rows(4)
    rows[1]["completion"] = [{"role": "assistant", "content": "7."}]
    rows[2]["prompt"] = ""
    uri = str(write_jsonl(tmp_path / "pc.jsonl", rows))
    with pytest.raises(DataError) as caught:
        load(tmp_path, uri=uri)
    assert "row 1: prompt and completion must both be strings or both be lists of turns" in str(caught.value)
    assert "row 2: prompt is empty" in str(caught.value)
