"""Checks every training row before any GPU time is spent, naming the row and what is wrong with it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kubesft_trainer.errors import DataError

RowFormat = Literal["messages", "prompt-completion", "text"]
"""The row formats TRL trains on, with its column names."""
SourceShape = Literal["messages", "sharegpt", "prompt-completion", "text"]
"""The row formats read: ShareGPT rows become messages once checked."""
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
    speakers: dict[str, str] = field(default_factory=dict)
    """ShareGPT speaker -> chat role."""


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def _turns_problem(
    turns: Any, name: str, keys: tuple[str, str], roles: dict[str, str], hint: str, need_assistant: bool
) -> str | None:
    """What is wrong with a list of turns whose ``keys`` name the speaker and the text, or None."""
    role_key, text_key = keys
    if turns is None:
        return f"missing field '{name}'"
    if not isinstance(turns, list) or not turns:
        return f"{name} must be a non-empty list of turns, got {type(turns).__name__}"
    for turn_index, turn in enumerate(turns):
        where = f"{name}[{turn_index}]"
        if not isinstance(turn, dict):
            return f"{where} must be an object with {role_key} and {text_key}, got {type(turn).__name__}"
        role = turn.get(role_key)
        if role is None:
            return f"{where}.{role_key} is missing"
        if role not in roles:
            return f"{where}.{role_key} is {role!r}, expected one of {', '.join(roles)}{hint}"
        content = turn.get(text_key)
        if content is None:
            return f"{where}.{text_key} is missing"
        if not isinstance(content, str):
            return f"{where}.{text_key} must be a string, got {type(content).__name__}"
        if not content.strip():
            return f"{where}.{text_key} is empty"
    if need_assistant and not any(roles[turn[role_key]] == "assistant" for turn in turns):
        return f"{name} has no assistant turn, so assistantOnlyLoss leaves nothing to learn"
    return None


def conversation_problem(messages: Any, name: str, need_assistant: bool) -> str | None:
    """What is wrong with one conversation (a list of role/content turns), or None."""
    roles = {role: role for role in ROLES}
    return _turns_problem(messages, name, ("role", "content"), roles, "", need_assistant)


def sharegpt_problem(turns: Any, name: str, speakers: dict[str, str], need_assistant: bool) -> str | None:
    """What is wrong with one ShareGPT conversation (a list of from/value turns), or None."""
    hint = " (dataset.roles maps other speakers to roles)"
    return _turns_problem(turns, name, ("from", "value"), speakers, hint, need_assistant)


def row_problem(
    row: dict[str, Any], row_format: SourceShape, fields: FieldNames, assistant_only: bool
) -> str | None:
    """What is wrong with one row (columns already renamed to TRL's names), or None."""
    if row_format == "sharegpt":
        return sharegpt_problem(row.get("messages"), fields.messages, fields.speakers, assistant_only)
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
    row_format: SourceShape,
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
