"""Checks every training row before any GPU time is spent, naming the row and what is wrong with it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kubesft_trainer.errors import DataError

RowFormat = Literal["messages", "prompt-completion", "text"]
ROLES = ("system", "user", "assistant", "tool")
SHOWN_PROBLEMS = 5
"""How many bad rows the error spells out; the count covers all of them."""


@dataclass(frozen=True)
class FieldNames:
    """The user's column names, so messages speak of the columns they wrote."""

    messages: str = "messages"
    prompt: str = "prompt"
    completion: str = "completion"
    text: str = "text"


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def conversation_problem(messages: Any, name: str, need_assistant: bool) -> str | None:
    """What is wrong with one conversation (a list of role/content turns), or None."""
    if messages is None:
        return f"missing field '{name}'"
    if not isinstance(messages, list) or not messages:
        return f"{name} must be a non-empty list of turns, got {type(messages).__name__}"
    for turn_index, turn in enumerate(messages):
        where = f"{name}[{turn_index}]"
        if not isinstance(turn, dict):
            return f"{where} must be an object with role and content, got {type(turn).__name__}"
        role = turn.get("role")
        if role is None:
            return f"{where}.role is missing"
        if role not in ROLES:
            return f"{where}.role is {role!r}, expected one of {', '.join(ROLES)}"
        content = turn.get("content")
        if content is None:
            return f"{where}.content is missing"
        if not isinstance(content, str):
            return f"{where}.content must be a string, got {type(content).__name__}"
        if not content.strip():
            return f"{where}.content is empty"
    if need_assistant and not any(turn.get("role") == "assistant" for turn in messages):
        return f"{name} has no assistant turn, so assistantOnlyLoss leaves nothing to learn"
    return None


def row_problem(
    row: dict[str, Any], row_format: RowFormat, fields: FieldNames, assistant_only: bool
) -> str | None:
    """What is wrong with one row (columns already renamed to TRL's names), or None."""
    if row_format == "messages":
        return conversation_problem(row.get("messages"), fields.messages, need_assistant=assistant_only)
    if row_format == "text":
        text = row.get("text")
        if text is None:
            return f"missing field '{fields.text}'"
        return f"{fields.text} is empty or not a string" if _blank(text) else None
    prompt, completion = row.get("prompt"), row.get("completion")
    for value, name in ((prompt, fields.prompt), (completion, fields.completion)):
        if value is None:
            return f"missing field '{name}'"
    if isinstance(prompt, list) or isinstance(completion, list):
        if not (isinstance(prompt, list) and isinstance(completion, list)):
            return f"{fields.prompt} and {fields.completion} must both be strings or both be lists of turns"
        problem = conversation_problem(prompt, fields.prompt, need_assistant=False)
        problem = problem or conversation_problem(completion, fields.completion, need_assistant=True)
        return problem
    if _blank(prompt):
        return f"{fields.prompt} is empty or not a string"
    if _blank(completion):
        return f"{fields.completion} is empty or not a string"
    return None


@dataclass
class RowReport:
    """Bad rows of one split: how many, and the first few with their problem."""

    split: str
    source: str
    total: int = 0
    bad: int = 0
    shown: list[tuple[int, str]] = field(default_factory=list)

    def add(self, index: int, problem: str | None) -> None:
        self.total += 1
        if problem is None:
            return
        self.bad += 1
        if len(self.shown) < SHOWN_PROBLEMS:
            self.shown.append((index, problem))

    def raise_if_bad(self) -> None:
        if not self.bad:
            return
        listed = "; ".join(f"row {index}: {problem}" for index, problem in self.shown)
        more = f" (first {len(self.shown)} shown)" if self.bad > len(self.shown) else ""
        raise DataError(
            f"dataset {self.split} split ({self.source}): {self.bad} of {self.total} rows are invalid{more}: {listed}"
        )


def check_rows(
    rows: Iterable[dict[str, Any]],
    indices: Sequence[int],
    row_format: RowFormat,
    fields: FieldNames,
    assistant_only: bool,
    split: str,
    source: str,
) -> RowReport:
    """Check ``rows``; ``indices`` gives each row's index in its source split, for the message."""
    report = RowReport(split=split, source=source)
    for index, row in zip(indices, rows, strict=True):
        report.add(index, row_problem(row, row_format, fields, assistant_only))
    return report
