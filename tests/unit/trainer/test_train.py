"""Real SFT runs of a tiny model the tests build, loaded through the trainer's production path."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import struct
import subprocess
import termios
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubesft_api import exit_codes
from kubesft_api.trainer_config import TrainerConfig
from kubesft_api.validation_stage import REPORT_PREFIX
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.data.example_view import LOSS_END, LOSS_START
from kubesft_trainer.model.templates import builtin_template
from kubesft_trainer.reporting.failure_report import ERROR_PREFIX
from kubesft_trainer.train import prepare
from testing.devcluster.processes import free_port
from testing.tinymodel import chat_rows, prompt_completion_rows, text_rows, write_jsonl
from tests.support.chat_labels import assistant_spans
from tests.support.trainer import (
    ROOT,
    last_stderr_line,
    run_trainer,
    run_trainer_with_hub_datasets,
    summary,
    trainer_command,
    trainer_config,
    trainer_env,
    write_config,
)

pytestmark = pytest.mark.slow

PROGRESS_BAR = re.compile(r"\| *(\d+)/\1 \[\d\d:\d\d<")
"""A finished tqdm bar, e.g. ``100%|██████████| 5/5 [00:02<00:00,  2.1it/s]``."""


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", chat_rows(96))


def test_chatml_assistant_only_labels_mask_exactly_the_non_assistant_tokens(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    raw = trainer_config(model, chat_data, tmp_path / "out", training={"assistantOnlyLoss": True})
    env = RuntimeEnv.from_environ({"KUBESFT_WORK_DIR": str(tmp_path / "work")})
    run = prepare(TrainerConfig.model_validate(raw), env, tmp_path / "ckpt", callbacks=[], progress_bar=False)
    tokenizer = run.tokenizer
    assert tokenizer.eos_token == "<|im_end|>", "the template's end of turn is the EOS the model learns"
    assert tokenizer.pad_token not in (None, tokenizer.eos_token)
    checked_multi_turn = False
    for index in range(6):
        row = run.trainer.train_dataset[index]
        messages = row["messages"]
        text = str(tokenizer.apply_chat_template(messages, tokenize=False))
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert encoded["input_ids"] == row["input_ids"]
        spans = assistant_spans(text, messages)
        expected = [any(s <= a and b <= e for s, e in spans) for a, b in encoded["offset_mapping"]]
        trained = [label != -100 for label in row["labels"]]
        assert trained == expected
        assert all(
            label == token
            for label, token in zip(row["labels"], row["input_ids"], strict=True)
            if label != -100
        )
        end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
        trained_ends = sum(
            1 for t, ok in zip(row["input_ids"], trained, strict=True) if ok and t == end_of_turn
        )
        assert trained_ends == len(spans), "each assistant turn's <|im_end|> carries loss"
        checked_multi_turn |= len(spans) > 1
    assert checked_multi_turn


def test_validate_prints_the_first_example_with_its_loss_spans_marked(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    raw = trainer_config(model, chat_data, tmp_path / "out", training={"assistantOnlyLoss": True})
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work", "--validate")
    assert result.returncode == 0, result.stderr
    first = chat_rows(96)[0]["messages"]
    assert f"{LOSS_START}{first[2]['content']}<|im_end|>{LOSS_END}" in result.stdout
    assert f"<|im_start|>user\n{first[1]['content']}<|im_end|>" in result.stdout
    assert "96 training rows" in result.stdout
    assert "memory estimate per GPU: " in result.stdout and "(1 GPU(s), not sharded;" in result.stdout
    # The estimate's total is in the report the operator copies into status.validation.
    (report_line,) = [line for line in result.stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    report = json.loads(report_line.removeprefix(REPORT_PREFIX))
    assert report["memoryPerGpuGib"] > 0
    assert f"about {report['memoryPerGpuGib']} GiB per GPU" in result.stdout
    assert not (tmp_path / "out").exists()
    pad_note = "the tokenizer has no pad token; padding with <|pad|> so EOS stays in the loss"
    assert f"note: {pad_note}" in result.stdout
    assert f"WARNING kubesft_trainer.model.loading: {pad_note}" in result.stderr


def _loaded_and_generating(directory: Path) -> list[int]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    trained = AutoModelForCausalLM.from_pretrained(directory)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me 3 things about tea."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    generated = trained.generate(ids, max_new_tokens=6, do_sample=False)
    return [int(t) for t in generated[0, ids.shape[1] :]]


def _new_tokens_forcing_end_of_turn(
    directory: Path, adapter_of: Path | None = None, generation_config: Path | None = None
) -> tuple[list[int], int]:
    """Greedy decoding from an output form (a model, or with ``adapter_of`` an adapter on that
    base) with ``<|im_end|>`` forced as the 4th new token: the new tokens, and <|im_end|>'s id.

    Forcing the token makes the check independent of what the tiny model has learned: generation
    must stop right there when the generation config names it, and run on when it does not.
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LogitsProcessor,
        LogitsProcessorList,
    )

    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.eos_token == "<|im_end|>", f"{directory}: the tokenizer's EOS"
    end = tokenizer.get_vocab()["<|im_end|>"]
    trained: Any
    if adapter_of is None:
        trained = AutoModelForCausalLM.from_pretrained(directory)
    else:
        from peft import PeftModel

        trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(adapter_of), directory)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me 3 things about tea."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]

    class ForceEndOfTurn(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if input_ids.shape[1] - ids.shape[1] == 3:
                scores = torch.full_like(scores, float("-inf"))
                scores[:, end] = 0.0
            return scores

    config = GenerationConfig.from_pretrained(generation_config or directory)
    generated = trained.generate(
        ids,
        generation_config=config,
        logits_processor=LogitsProcessorList([ForceEndOfTurn()]),
        max_new_tokens=12,
        do_sample=False,
    )
    return [int(t) for t in generated[0, ids.shape[1] :]], end


def _stops_at_end_of_turn(directory: Path, adapter_of: Path | None = None) -> None:
    new, end = _new_tokens_forcing_end_of_turn(directory, adapter_of)
    assert len(new) == 4 and new[-1] == end, f"{directory}: generation went on past <|im_end|>: {new}"
    assert json.loads((directory / "generation_config.json").read_text())["eos_token_id"][0] == end


def test_conversational_run_learns_and_writes_model_card_summary_and_curve(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    raw = trainer_config(
        model,
        chat_data,
        output,
        dataset={"evalFraction": 0.1},
        training={"assistantOnlyLoss": True, "maxSteps": 24, "evalSteps": 10},
    )
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    facts = summary(output)
    assert facts["globalStep"] == 24 and facts["rowFormat"] == "messages"
    assert facts["trainRows"] + facts["evalRows"] == 96
    assert facts["finalTrainLoss"] < facts["firstTrainLoss"]
    assert facts["finalEvalLoss"] is not None
    assert facts["config"]["training"]["assistantOnlyLoss"] is True
    assert (output / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    card = (output / "README.md").read_text()
    assert f"base_model: {json.dumps(str(model))}" in card and str(chat_data) in card
    assert (output / "chat_template.jinja").read_text() == builtin_template("chatml").source
    config = json.loads((output / "config.json").read_text())
    tokenizer_config = json.loads((output / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    assert tokenizer_config["pad_token"] not in (None, "<|im_end|>")
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert len(_loaded_and_generating(output)) > 0
    _stops_at_end_of_turn(output)
    # The check can fail: with the base model's generation config the same decoding runs on.
    base_config = model / "generation_config.json"
    assert len(_new_tokens_forcing_end_of_turn(output, generation_config=base_config.parent)[0]) > 4
    # Before and after samples: the first 3 evaluation prompts, greedy, in the summary and the card.
    users = {row["messages"][1]["content"] for row in chat_rows(96)}
    assert len(facts["samples"]) == 3 and facts["sampleSeconds"] > 0
    for sample in facts["samples"]:
        assert sample["prompt"] in users
        assert isinstance(sample["before"], str) and isinstance(sample["after"], str)
        assert sample["after"] != sample["before"], "24 steps change what the model says"
    assert "## Samples" in card and "| Prompt | Before | After |" in card
    assert f"| {facts['samples'][0]['prompt']} |" in card
    assert "answered 3 sample prompt(s) before training" in result.stderr
    assert (facts["weightsDtype"], facts["precision"], facts["endOfTurnToken"]) == (
        "float32",
        "fp32",
        "<|im_end|>",
    )
    assert "step 24/24 (100%) | loss" in result.stderr
    evaluations = re.findall(r"step (\d+)/24 eval_loss", result.stderr)
    assert evaluations == ["10", "20", "24"], "every evalSteps steps and once at the end"
    assert not PROGRESS_BAR.search(result.stderr), "no progress bars when stderr is not a terminal"


CONVERSATIONAL_PROMPT_COMPLETION = [
    {"prompt": row["messages"][:2], "completion": row["messages"][2:3]} for row in chat_rows(96)
]


@pytest.mark.parametrize(
    ("rows", "row_format", "training"),
    [
        (prompt_completion_rows(96), "prompt-completion", {}),
        (CONVERSATIONAL_PROMPT_COMPLETION, "prompt-completion", {"assistantOnlyLoss": True}),
        (text_rows(96), "text", {}),
    ],
    ids=["prompt-completion", "conversational-prompt-completion-assistant-only", "text"],
)
def test_prompt_completion_and_text_formats_train(
    model: Path, tmp_path: Path, rows: list[dict[str, Any]], row_format: str, training: dict[str, Any]
) -> None:
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    raw = trainer_config(model, data, tmp_path / "out", training={"maxSteps": 16, **training})
    raw["evaluation"] = {"samplePrompts": ["The rivers story"], "sampleMaxNewTokens": 8}
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    facts = summary(tmp_path / "out")
    assert facts["rowFormat"] == row_format
    assert facts["finalTrainLoss"] < facts["firstTrainLoss"]
    assert [sample["prompt"] for sample in facts["samples"]] == ["The rivers story"]


def test_a_hub_dataset_trains_at_its_revision_recorded_in_the_summary_and_card(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    main = write_jsonl(tmp_path / "main.jsonl", chat_rows(40))
    tagged = write_jsonl(tmp_path / "v1.jsonl", chat_rows(24, seed=3))
    output = tmp_path / "out"
    raw = trainer_config(model, chat_data, output, training={"maxSteps": 3})
    raw["dataset"] = {"name": "kubesft/tiny-chat", "revision": "v1"}
    raw["evaluation"] = {"sampleCount": 0}
    served = {"kubesft/tiny-chat@main": main, "kubesft/tiny-chat@v1": tagged}
    result = run_trainer_with_hub_datasets(write_config(tmp_path / "c.yaml", raw), tmp_path / "work", served)
    assert result.returncode == 0, result.stderr[-3000:]
    facts = summary(output)
    assert (facts["datasetRevision"], facts["trainRows"]) == ("v1", 24), "the v1 rows, not main's 40"
    assert facts["samples"] == [], "sampleCount 0 turns the samples off"
    card = (output / "README.md").read_text()
    assert "- dataset: `kubesft/tiny-chat` (messages rows), revision `v1`" in card
    assert "## Samples" not in card


def _run_on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal, as ``kubectl logs -f``'s user or a local shell sees it."""
    controller, terminal = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm draws nothing in no room.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=terminal, cwd=ROOT)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO once the process has exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=600), b"".join(chunks).decode(errors="replace")


def test_a_progress_bar_is_drawn_only_on_a_terminal(model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "rows.jsonl", text_rows(40))
    raw = trainer_config(model, data, tmp_path / "out", training={"maxSteps": 5, "loggingSteps": 1})
    command = trainer_command("--config", str(write_config(tmp_path / "c.yaml", raw)))
    code, output = _run_on_a_terminal(command, trainer_env(tmp_path / "work"))
    assert code == 0, output[-3000:]
    bars = [match.group(0) for match in PROGRESS_BAR.finditer(output)]
    assert any(bar.startswith("| 5/5") for bar in bars), output[-3000:]
    assert "step 5/5 (100%) | loss" in output, "the log lines go on above the bar"
    assert "{'loss'" not in output, "transformers' raw dict printing is replaced by the log line"


def _digest(directory: Path) -> str:
    return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()


def test_lora_writes_an_adapter_keeps_the_base_and_merges(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    base_digest = _digest(model)
    output = tmp_path / "out"
    raw = trainer_config(
        model,
        chat_data,
        output,
        training={"assistantOnlyLoss": True, "maxSteps": 12, "learningRate": 5e-3},
        lora={"enabled": True, "r": 4, "alpha": 8, "mergeOnFinish": True},
    )
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output / "adapter_config.json").is_file() and (output / "adapter_model.safetensors").is_file()
    assert not (output / "model.safetensors").exists()
    assert json.loads((output / "adapter_config.json").read_text())["r"] == 4
    _stops_at_end_of_turn(output, adapter_of=model)
    _stops_at_end_of_turn(output / "merged")
    assert _digest(model) == base_digest, "the base model on disk is untouched"

    base_weights = load_file(str(model / "model.safetensors"))
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model), output)
    for name, tensor in adapted.get_base_model().state_dict().items():
        plain = name.replace(".base_layer", "")
        if plain in base_weights:
            assert tensor.equal(base_weights[plain]), f"{plain} changed under the adapter"

    merged_weights = load_file(str(output / "merged" / "model.safetensors"))
    changed = [n for n, t in merged_weights.items() if n in base_weights and not t.equal(base_weights[n])]
    assert any("q_proj" in n for n in changed), "the merged model carries the trained adapter"
    assert len(_loaded_and_generating(output / "merged")) > 0
    assert summary(output)["mergedModelPath"] == "merged"


def test_bad_rows_fail_permanently_naming_the_row(model: Path, tmp_path: Path) -> None:
    rows = chat_rows(20)
    rows[13]["messages"][0]["role"] = "narrator"
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    raw = trainer_config(model, data, tmp_path / "out")
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert result.returncode == exit_codes.INVALID_DATA
    line = last_stderr_line(result)
    assert line.startswith(ERROR_PREFIX)
    assert "1 of 20 rows are invalid" in line and "row 13: messages[0].role is 'narrator'" in line


def test_settings_this_pod_cannot_honour_fail_as_invalid_config(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    qlora = trainer_config(model, chat_data, tmp_path / "out", lora={"enabled": True, "quantization": "4bit"})
    # Not --validate: validation runs on a CPU-only pod by design, the training pod has the GPU.
    result = run_trainer(write_config(tmp_path / "q.yaml", qlora), tmp_path / "work")
    assert result.returncode == exit_codes.INVALID_CONFIG
    assert "lora.quantization: 4bit needs a CUDA GPU" in last_stderr_line(result)

    breaks_resume = trainer_config(
        model, chat_data, tmp_path / "out", training={"extraArgs": {"ignore_data_skip": True}}
    )
    result = run_trainer(write_config(tmp_path / "x.yaml", breaks_resume), tmp_path / "work", "--validate")
    assert result.returncode == exit_codes.INVALID_CONFIG
    assert "'ignore_data_skip' is refused: a resumed run would train on the data" in last_stderr_line(result)

    completion_only = trainer_config(
        model, chat_data, tmp_path / "out", training={"completionOnlyLoss": True}
    )
    result = run_trainer(write_config(tmp_path / "co.yaml", completion_only), tmp_path / "work", "--validate")
    assert result.returncode == exit_codes.INVALID_CONFIG
    line = last_stderr_line(result)
    assert "training.completionOnlyLoss: applies to prompt-completion data" in line
    assert "use training.assistantOnlyLoss" in line

    no_template = trainer_config(model, chat_data, tmp_path / "out")
    del no_template["model"]["chatTemplate"]
    result = run_trainer(write_config(tmp_path / "t.yaml", no_template), tmp_path / "work", "--validate")
    assert result.returncode == exit_codes.INVALID_CONFIG
    assert "model.chatTemplate: the model has no chat template" in last_stderr_line(result)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def _metric(text: str, name: str) -> float:
    values = [
        float(line.split()[-1]) for line in text.splitlines() if line.startswith((name + " ", name + "{"))
    ]
    assert values, f"{name} missing"
    return values[0]


def test_metrics_and_progress_are_served_during_a_run(model: Path, chat_data: Path, tmp_path: Path) -> None:
    import shutil

    port = free_port()
    raw = trainer_config(
        model,
        chat_data,
        tmp_path / "out",
        training={"maxSteps": 400, "loggingSteps": 2, "evalSteps": 2},
        dataset={"evalFraction": 0.2},
    )
    process = subprocess.Popen(
        trainer_command("--config", str(write_config(tmp_path / "c.yaml", raw))),
        env=trainer_env(tmp_path / "work", KUBESFT_METRICS_PORT=str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress, metrics_text = None, ""
    try:
        while process.poll() is None:
            try:
                progress = json.loads(_get(f"http://127.0.0.1:{port}/progress"))
                metrics_text = _get(f"http://127.0.0.1:{port}/metrics").decode()
            except OSError:
                progress = None
            if (
                progress
                and progress["step"] >= 4
                and None not in (progress.get("loss"), progress.get("evalLoss"))
            ):
                break
            time.sleep(0.2)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=120)
    assert progress is not None and progress["step"] >= 4, stderr[-3000:]
    assert progress["totalSteps"] == 400
    assert 0 < progress["percent"] < 100 and progress["learningRate"] > 0
    assert progress["tokensPerSecond"] > 0 and progress["updatedAt"].endswith("Z")
    assert progress["loss"] > 0 and progress["evalLoss"] > 0 and progress["epoch"] > 0
    assert progress["evalLosses"] == {"heldout": progress["evalLoss"]}
    assert progress["etaSeconds"] > 0
    assert _metric(metrics_text, "kubesft_train_global_step") >= 4
    assert _metric(metrics_text, "kubesft_train_max_steps") == 400
    assert _metric(metrics_text, "kubesft_train_tokens_total") > 0
    for name in (
        "kubesft_train_loss",
        "kubesft_train_learning_rate",
        "kubesft_train_grad_norm",
        "kubesft_train_epoch",
        "kubesft_train_tokens_per_second",
        "kubesft_eval_loss",
    ):
        assert _metric(metrics_text, name) > 0
    assert 'kubesft_eval_loss{set="heldout"}' in metrics_text
    # On CPU there is no GPU memory to report, and a 0 would read as a measurement.
    assert "kubesft_gpu_memory_allocated_bytes" not in metrics_text
    assert f'kubesft_train_info{{dataset="{chat_data}",model="{model}"}} 1.0' in metrics_text
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make control-plane`"
    check = subprocess.run([promtool, "check", "metrics"], input=metrics_text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
