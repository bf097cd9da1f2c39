"""Row shapes: which format a source's columns show, and how its rows become the columns TRL reads
(ShareGPT turns and asChat rows become messages; a system prompt goes into every conversation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from kubesft_api.data_source import DEFAULT_MESSAGES_FIELD, DEFAULT_SHAREGPT_FIELD, SourceFields
from kubesft_trainer.data.row_checks import FieldNames, RowFormat, SourceShape
from kubesft_trainer.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

SystemPromptMode = Literal["keep", "replace"]


def field_names(source: SourceFields, conversation: str | None = None) -> FieldNames:
    """The user's column names; ``conversation`` is the conversation column auto detection found."""
    return FieldNames(
        messages=conversation or source.conversation_field,
        prompt=source.prompt_field,
        completion=source.completion_field,
        text=source.text_field,
        speakers=source.speaker_roles,
    )


def _turn_shape(dataset: Dataset, column: str) -> SourceShape:
    """messages or sharegpt, from the keys of the first turn that has any."""
    for row in dataset.select(range(min(len(dataset), 20)))[column]:
        for turn in row if isinstance(row, list) else []:
            if isinstance(turn, dict) and turn.get("from") is not None:
                return "sharegpt"
            if isinstance(turn, dict) and turn.get("role") is not None:
                return "messages"
    return "messages"


def detect_shape(dataset: Dataset, source: SourceFields, where: str) -> SourceShape:
    """The row format ``format`` names, or the one the columns (and the first turns) show."""
    columns = list(dataset.column_names)
    fields = field_names(source)
    if source.format != "auto":
        wanted = {
            "messages": [fields.messages],
            "sharegpt": [fields.messages],
            "prompt-completion": [fields.prompt, fields.completion],
            "text": [fields.text],
        }[source.format]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(
                f"{where}: format {source.format} needs column(s) {', '.join(missing)}; "
                f"the data has {', '.join(columns)}"
            )
        return source.format
    conversation_columns = (
        [source.messages_field]
        if source.messages_field is not None
        else [DEFAULT_MESSAGES_FIELD, DEFAULT_SHAREGPT_FIELD]
    )
    for column in conversation_columns:
        if column in columns:
            return _turn_shape(dataset, column)
    if fields.prompt in columns and fields.completion in columns:
        return "prompt-completion"
    if fields.text in columns:
        return "text"
    raise DataError(
        f"{where}: cannot tell the format from the columns {', '.join(columns)}; expected "
        f"{' or '.join(repr(c) for c in conversation_columns)} (conversations), '{fields.prompt}' + "
        f"'{fields.completion}', or '{fields.text}'. Set format and the matching *Field names"
    )


def conversation_column(columns: list[str], source: SourceFields) -> str:
    """The conversation column: the one named or the format's default, or with auto detection
    and no name, messages or else conversations."""
    if source.messages_field is not None or source.format != "auto":
        return source.conversation_field
    return DEFAULT_MESSAGES_FIELD if DEFAULT_MESSAGES_FIELD in columns else DEFAULT_SHAREGPT_FIELD


def to_trl_columns(dataset: Dataset, shape: SourceShape, source: SourceFields) -> Dataset:
    """Keep only the columns the shape reads, under TRL's names."""
    conversation = conversation_column(list(dataset.column_names), source)
    mapping = {
        "messages": {conversation: "messages"},
        "sharegpt": {conversation: "messages"},
        "prompt-completion": {source.prompt_field: "prompt", source.completion_field: "completion"},
        "text": {source.text_field: "text"},
    }[shape]
    dataset = dataset.select_columns(list(mapping))
    renames = {old: new for old, new in mapping.items() if old != new}
    return dataset.rename_columns(renames) if renames else dataset


def trl_format(shape: SourceShape, as_chat: bool) -> RowFormat:
    """The format TRL trains on once the rows are converted."""
    if shape == "sharegpt" or (shape == "prompt-completion" and as_chat):
        return "messages"
    return shape


def _turns(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": str(turn["role"]), "content": str(turn["content"])} for turn in turns]


def _with_system(
    turns: list[dict[str, str]], prompt: str | None, mode: SystemPromptMode
) -> list[dict[str, str]]:
    if prompt is None:
        return turns
    has_system = any(turn["role"] == "system" for turn in turns)
    if has_system and mode == "keep":
        return turns
    return [{"role": "system", "content": prompt}, *(t for t in turns if t["role"] != "system")]


def converted(
    dataset: Dataset,
    shape: SourceShape,
    source: SourceFields,
    system_prompt: str | None,
    mode: SystemPromptMode,
) -> Dataset:
    """Checked rows in TRL's columns: ShareGPT and asChat rows as messages, the system prompt in,
    conversation turns reduced to role and content so sources of one format share one schema."""
    from datasets import Features, Value

    turn_features = [{"role": Value("string"), "content": Value("string")}]
    speakers = source.speaker_roles
    if shape == "sharegpt":
        return dataset.map(
            lambda row: {
                "messages": _with_system(
                    [{"role": speakers[t["from"]], "content": t["value"]} for t in row["messages"]],
                    system_prompt,
                    mode,
                )
            },
            features=Features({"messages": turn_features}),
        )
    if shape == "messages":
        return dataset.map(
            lambda row: {"messages": _with_system(_turns(row["messages"]), system_prompt, mode)},
            features=Features({"messages": turn_features}),
        )
    if shape == "prompt-completion" and source.as_chat:
        return dataset.map(
            lambda row: {
                "messages": _with_system(
                    [
                        {"role": "user", "content": row["prompt"]},
                        {"role": "assistant", "content": row["completion"]},
                    ],
                    system_prompt,
                    mode,
                )
            },
            remove_columns=["prompt", "completion"],
            features=Features({"messages": turn_features}),
        )
    if shape == "prompt-completion" and len(dataset) and isinstance(dataset[0]["prompt"], list):
        return dataset.map(
            lambda row: {
                "prompt": _with_system(_turns(row["prompt"]), system_prompt, mode),
                "completion": _turns(row["completion"]),
            },
            features=Features({"prompt": turn_features, "completion": turn_features}),
        )
    if system_prompt is not None:
        raise DataError(
            f"dataset.systemPrompt: needs conversational data; {source.label} has plain "
            + (
                "text"
                if shape == "text"
                else "string prompts and completions (set asChat to make them chats)"
            )
        )
    return dataset
