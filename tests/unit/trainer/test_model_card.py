"""The model card's tables: settings, mixture sources, evaluation sets and sample answers."""

from __future__ import annotations

from typing import Any

from kubesft_trainer.data.mixing import SourceRows
from kubesft_trainer.reporting.eval_sets import EvalSetResult
from kubesft_trainer.reporting.model_card import render_model_card
from kubesft_trainer.reporting.samples import SampleAnswer
from kubesft_trainer.reporting.summary import TrainingSummary


def _summary(**changes: Any) -> TrainingSummary:
    facts: dict[str, Any] = {
        "base_model": "tiny",
        "dataset": "s3://data/chat.jsonl",
        "row_format": "messages",
        "train_rows": 10,
        "chat_template": "chatml",
        "global_step": 3,
        "max_steps": 3,
        "precision": "fp32",
        "started_at": "2030-01-01T00:00:00Z",
        "finished_at": "2030-01-01T00:01:00Z",
    }
    return TrainingSummary(**(facts | changes))


def _table_after(card: str, header: str) -> list[str]:
    lines = card.splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_settings_table_lists_the_spec_settings_in_order_then_lora_and_extra_args_sorted() -> None:
    card = render_model_card(
        _summary(
            world_size=2,
            weights_dtype="bfloat16",
            lora=True,
            config={
                "training": {
                    "packing": False,
                    "maxSteps": 3,
                    "extraArgs": {"weight_decay": 0.1, "adam_beta2": 0.99},
                },
                "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "targetModules": ["q_proj", "v_proj"]},
            },
        )
    )
    assert _table_after(card, "| setting | value |") == [
        "| setting | value |",
        "|---|---|",
        "| maxSteps | 3 |",
        "| packing | False |",
        "| precision | fp32 |",
        "| weights | bfloat16 |",
        "| processes | 2 |",
        "| LoRA | r=8, alpha=16, dropout=0.05, targets=q_proj, v_proj, quantization=None |",
        "| adam_beta2 | 0.99 |",
        "| weight_decay | 0.1 |",
    ]


def test_sources_table_appears_for_a_mixture_only() -> None:
    sources = [
        SourceRows(source="s3://data/a.jsonl", revision="v2", format="messages", train_rows=6, eval_rows=1),
        SourceRows(source="org/b", format="text", train_rows=4),
    ]
    header = "| source | revision | format | training rows | evaluation rows |"
    assert _table_after(render_model_card(_summary(sources=sources)), header) == [
        header,
        "|---|---|---|---|---|",
        "| `s3://data/a.jsonl` | v2 | messages | 6 | 1 |",
        "| `org/b` | n/a | text | 4 | n/a |",
    ]
    assert header not in render_model_card(_summary(sources=sources[:1]))


def test_a_source_name_with_a_pipe_stays_in_its_cell() -> None:
    sources = [
        SourceRows(source="s3://data/a|b.jsonl", format="messages", train_rows=6),
        SourceRows(source="org/b", format="text", train_rows=4),
    ]
    header = "| source | revision | format | training rows | evaluation rows |"
    rows = _table_after(render_model_card(_summary(sources=sources)), header)
    assert rows[2] == "| `s3://data/a\\|b.jsonl` | n/a | messages | 6 | n/a |"


def test_eval_sets_table_shows_the_change_and_marks_guarded_sets() -> None:
    card = render_model_card(
        _summary(
            eval_sets=[
                EvalSetResult(set="heldout", rows=2, baseline_loss=2.0, final_loss=1.5, change=-0.5),
                EvalSetResult(
                    set="general",
                    rows=3,
                    baseline_loss=1.0,
                    final_loss=1.25,
                    change=0.25,
                    guards_retention=True,
                    regressed=True,
                ),
                EvalSetResult(set="code", rows=4, guards_retention=True),
            ]
        )
    )
    assert "## Evaluation sets" in card
    assert _table_after(card, "| set | rows | before | end | change | retention |")[2:] == [
        "| heldout | 2 | 2.0000 | 1.5000 | -0.5000 |  |",
        "| general | 3 | 1.0000 | 1.2500 | +0.2500 | regressed |",
        "| code | 4 | n/a | n/a | n/a | kept |",
    ]


def test_samples_table_escapes_cells_and_marks_answers_cut_off_by_the_token_limit() -> None:
    card = render_model_card(
        _summary(
            samples=[
                SampleAnswer(
                    prompt="a|b\nc", before="", after="yes", before_stopped=True, after_stopped=False
                ),
                SampleAnswer(prompt="hi", before="hello"),
            ]
        )
    )
    assert "## Samples" in card
    assert _table_after(card, "| Prompt | Before | After |")[1:] == [
        "|---|---|---|",
        "| a\\|b<br>c | (nothing) | yes … |",
        "| hi | hello … | n/a |",
    ]
    assert "## Samples" not in render_model_card(_summary())
