"""Answers to a few prompts before and after training, the check people otherwise do by hand.

Greedy decoding of one batch with a bounded number of new tokens, on rank 0 only, so the cost stays a small,
fixed share of the run (``bench/sample_cost`` measures it). The prompts are
``evaluation.samplePrompts``, or the first prompts of the evaluation (else training) rows.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from kubesft_api.evaluation import EvaluationSettings
from kubesft_trainer.model.stop_tokens import StopTokens

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

BEFORE_FILE = "kubesft-samples-before.json"
"""The answers before training, in each checkpoint: a resumed attempt takes them from there, since
the model it resumes is no longer the one they describe."""


class SampleAnswer(BaseModel):
    """One prompt and what the model answered before and after training."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    prompt: str
    before: str
    after: str | None = None
    before_stopped: bool = False
    """Generation ended at a stop token, not at the token limit."""
    after_stopped: bool | None = None


@dataclass(frozen=True)
class Prompt:
    """What is shown as the prompt, and what the model is given: turns or plain text."""

    shown: str
    messages: list[dict[str, Any]] | None = None
    text: str | None = None


def _prompt_of(row: dict[str, Any]) -> Prompt | None:
    """A row's prompt: the turns before the first assistant turn, or the prompt column."""
    if "messages" in row:
        turns = []
        for turn in row["messages"]:
            if turn.get("role") == "assistant":
                break
            turns.append({"role": turn["role"], "content": turn["content"]})
        users = [turn["content"] for turn in turns if turn["role"] == "user"]
        return Prompt(shown=users[-1], messages=turns) if users else None
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        turns = [{"role": turn["role"], "content": turn["content"]} for turn in prompt]
        users = [turn["content"] for turn in turns if turn["role"] == "user"]
        return Prompt(shown=users[-1] if users else str(turns[-1]["content"]), messages=turns)
    if isinstance(prompt, str):
        return Prompt(shown=prompt, text=prompt)
    return None


def choose_prompts(
    settings: EvaluationSettings, train: Dataset, evaluation: Dataset | None, chat: bool
) -> list[Prompt]:
    """``samplePrompts`` (user turns when the tokenizer has a chat template), or the first
    ``sampleCount`` prompts of the data. Plain text rows have no prompts."""
    if settings.sample_prompts:
        if chat:
            return [
                Prompt(shown=p, messages=[{"role": "user", "content": p}]) for p in settings.sample_prompts
            ]
        return [Prompt(shown=p, text=p) for p in settings.sample_prompts]
    rows = evaluation if evaluation is not None else train
    prompts: list[Prompt] = []
    for index in range(min(len(rows), 10 * settings.sample_count)):
        if len(prompts) >= settings.sample_count:
            break
        prompt = _prompt_of(rows[index])
        if prompt is not None:
            prompts.append(prompt)
    return prompts


class SampleRun:
    """Generates the answers to ``prompts`` with the model as it is when called."""

    def __init__(
        self,
        prompts: list[Prompt],
        tokenizer: PreTrainedTokenizerBase,
        stop: StopTokens,
        max_new_tokens: int,
        autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
        synced: bool = False,
    ) -> None:
        self.synced = synced
        """After training every rank of a sharded model generates together (each forward gathers the
        layers); before, rank 0 alone answers with the model it loaded."""
        self.prompts = prompts
        self.tokenizer = tokenizer
        self.stop = stop
        self.max_new_tokens = max_new_tokens
        self.autocast = autocast
        self.answers: list[SampleAnswer] = []
        self.seconds = 0.0

    def _inputs(self, prompt: Prompt) -> list[int]:
        if prompt.messages is not None:
            text = str(
                self.tokenizer.apply_chat_template(
                    prompt.messages, add_generation_prompt=True, tokenize=False
                )
            )
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(prompt.text or "")["input_ids"]
        return [int(token) for token in ids]

    def _answers(self, model: Any, base_config: Any, synced: bool) -> list[tuple[str, bool]]:
        """All prompts in one left-padded batch: one decode loop instead of one per prompt."""
        import torch

        config = self.stop.generation_config(base_config)
        config.update(
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            use_cache=True,
            temperature=None,
            top_p=None,
            top_k=None,
        )
        pad = self.stop.pad_token_id if self.stop.pad_token_id is not None else self.stop.eos_token_ids[0]
        inputs = [self._inputs(prompt) for prompt in self.prompts]
        width = max(len(ids) for ids in inputs)
        device = next(model.parameters()).device
        ids = torch.tensor([[pad] * (width - len(row)) + row for row in inputs], device=device)
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in inputs], device=device)
        with torch.no_grad(), self.autocast():
            output = model.generate(
                input_ids=ids, attention_mask=mask, generation_config=config, synced_gpus=synced
            )
        answers = []
        for row in output[:, width:].tolist():
            end = next((i for i, token in enumerate(row) if token in self.stop.eos_token_ids), None)
            new = row if end is None else row[:end]
            answers.append(
                (str(self.tokenizer.decode(new, skip_special_tokens=True)).strip(), end is not None)
            )
        return answers

    def _inputs_record(self) -> dict[str, Any]:
        return {"prompts": [asdict(prompt) for prompt in self.prompts], "maxNewTokens": self.max_new_tokens}

    def before_record(self) -> bytes:
        """The answers before training with what they answered, for ``BEFORE_FILE``."""
        answers = [answer.model_dump(mode="json", by_alias=True) for answer in self.answers]
        return json.dumps({**self._inputs_record(), "answers": answers}).encode()

    def take_before(self, checkpoint: Path) -> bool:
        """Take the answers before training from a checkpoint's ``BEFORE_FILE``, when it answered
        the same prompts with the same token limit; returns whether it did."""
        path = checkpoint / BEFORE_FILE
        if not self.prompts or not path.is_file():
            return False
        try:
            record = json.loads(path.read_text())
            answers = [SampleAnswer.model_validate(answer) for answer in record["answers"]]
        except (ValueError, KeyError, TypeError):
            log.warning(
                "%s in %s is unreadable: the sample prompts are answered again", BEFORE_FILE, checkpoint.name
            )
            return False
        same = {key: record.get(key) for key in ("prompts", "maxNewTokens")} == self._inputs_record()
        if not same or len(answers) != len(self.prompts):
            return False
        self.answers = answers
        log.info(
            "took the answers before training to %d sample prompt(s) from %s", len(answers), checkpoint.name
        )
        return True

    def answer(self, model: Any, after: bool) -> None:
        """Answer every prompt now; the first call fills ``before``, the one ``after`` training the rest."""
        if not self.prompts:
            return
        started = time.monotonic()
        was_training = model.training
        model.eval()
        base_config = getattr(model, "generation_config", None)
        try:
            for number, (prompt, (text, stopped)) in enumerate(
                zip(self.prompts, self._answers(model, base_config, self.synced and after), strict=True)
            ):
                if after and number < len(self.answers):
                    self.answers[number].after, self.answers[number].after_stopped = text, stopped
                elif after:
                    continue  # a rank that only helps a sharded model generate keeps nothing
                else:
                    self.answers.append(
                        SampleAnswer(prompt=prompt.shown, before=text, before_stopped=stopped)
                    )
        finally:
            model.train(was_training)
        elapsed = time.monotonic() - started
        self.seconds += elapsed
        log.info(
            "answered %d sample prompt(s) %s training in %.1f s",
            len(self.prompts),
            "after" if after else "before",
            elapsed,
        )
