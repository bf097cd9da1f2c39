"""Training throughput and MFU on one GPU: plain TRL SFTConfig defaults against kubesft's trainer.

Models are random-init, their configs written here (no hub): SmolLM2-360M and a ~1.7B
Llama-style model (SmolLM2-1.7B's shape). Data: synthetic conversations of varied length.

The two arms, on the same model files, data, batch size and max length:
- ``trl-defaults``: ``SFTConfig`` with only the run's length, batch and logging set, as a
  user's first script would (padding to the longest row of each batch, bf16, SDPA).
- ``kubesft``: the trainer's own ``prepare()`` on a TrainerConfig with ``packing: true``:
  best-fit-decreasing packing, padding-free batches, precision ``auto`` (bf16), and what
  ``kubesft_trainer.config.tuning`` adds: FlashAttention 2 for packed batches when ``flash_attn`` is
  installed (SDPA otherwise) and Liger kernels when ``liger_kernel`` is installed on Ampere or newer.

tokens/s counts the tokens trained on (TRL's ``num_tokens``: padding excluded), between the end
of the warm-up steps and the last step.

MFU = achieved FLOPs/s ÷ the GPU's dense bf16 peak, with FLOPs per trained token
  6·N + 12·L·d·S
where N is the parameter count of the matmuls (all weights but the input embedding; the LM head
counts even when tied), L the layers, d the hidden size and S the mean tokens per example (the
attention span of each token, taken at its full causal length as in the PaLM paper's appendix B).
Peak FLOPs per GPU model: ``PEAK_BF16_TFLOPS`` below (vendor data sheets, dense, no sparsity);
``--peak-tflops`` overrides it.

Run on a CUDA machine: ``python bench/gpu_throughput/run.py`` (both models, both arms), or e.g.
``--models smollm2-360m --steps 30``. ``--dry-run`` runs the same code on CPU with a tiny
model and a few steps, to check the script. Without a GPU and without ``--dry-run`` it says so
and exits 0 (so ``make bench`` goes on), measuring nothing. Figures go to stdout and
``bench/out/gpu_throughput.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "api"), str(ROOT / "trainer_image")]

PEAK_BF16_TFLOPS = {
    "H200": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.4,
    "GH200": 989.4,
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.1,
    "L40": 181.0,
    "L4": 121.0,
}
"""Dense bf16 tensor-core peak by GPU name, in TFLOP/s (first name contained in the device's wins)."""

WORDS = [
    "the",
    "model",
    "reads",
    "a",
    "prompt",
    "and",
    "writes",
    "an",
    "answer",
    "about",
    "rivers",
    "tea",
    "stars",
    "bread",
    "chess",
    "gpus",
    "kubernetes",
    "clusters",
    "schedule",
    "pods",
    "while",
    "a",
    "trainer",
    "saves",
    "checkpoints",
    "to",
    "object",
    "storage",
]


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    kv_heads: int
    vocab_size: int


SHAPES = {
    # HuggingFaceTB/SmolLM2-360M's config.json
    "smollm2-360m": ModelShape("smollm2-360m", 960, 2560, 32, 15, 5, 49152),
    # HuggingFaceTB/SmolLM2-1.7B's config.json: a Llama-style ~1.7B model
    "llama-1.7b": ModelShape("llama-1.7b", 2048, 8192, 24, 32, 32, 49152),
    "tiny": ModelShape("tiny", 64, 128, 2, 4, 2, 512),
}


def build_model(shape: ModelShape, tokenizer_dir: Path, directory: Path, bf16: bool) -> Path:
    """A random-init Llama of ``shape`` saved with the tokenizer, as a hub checkpoint would be."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=max(shape.vocab_size, len(tokenizer)),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=8192,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if bf16:
        # Published checkpoints of these models are bf16; from_pretrained's dtype auto keeps it.
        model.bfloat16()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def matmul_parameters(shape: ModelShape) -> int:
    """Weights that take part in a matmul per token: attention, MLP and the LM head."""
    head_dim = shape.hidden_size // shape.heads
    attention = shape.hidden_size * head_dim * (2 * shape.heads + 2 * shape.kv_heads)
    mlp = 3 * shape.hidden_size * shape.intermediate_size
    return shape.layers * (attention + mlp) + shape.vocab_size * shape.hidden_size


def flops_per_token(shape: ModelShape, mean_example_tokens: float) -> float:
    return 6 * matmul_parameters(shape) + 12 * shape.layers * shape.hidden_size * mean_example_tokens


def synthetic_rows(count: int, max_words: int, seed: int = 0) -> list[dict[str, Any]]:
    """Conversations whose lengths vary a lot, as real chat data does (that is what padding wastes)."""
    rng = random.Random(seed)

    def text(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))

    return [
        {
            "messages": [
                {"role": "user", "content": text(8, max_words // 4)},
                {"role": "assistant", "content": text(16, max_words)},
            ]
        }
        for _ in range(count)
    ]


class Meter:
    """A TrainerCallback recording (time, tokens trained on) at each logging step."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float, float]] = []

    def callback(self) -> Any:
        from transformers import TrainerCallback

        meter = self

        class Recorder(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
                if logs and "num_tokens" in logs:
                    meter.points.append((state.global_step, time.perf_counter(), float(logs["num_tokens"])))

        return Recorder()

    def tokens_per_second(self, warmup_steps: int) -> float:
        after = [p for p in self.points if p[0] >= warmup_steps]
        if len(after) < 2:
            raise RuntimeError(f"too few logged steps after the warm-up: {self.points}")
        (_, t0, n0), (_, t1, n1) = after[0], after[-1]
        return (n1 - n0) / (t1 - t0)


@dataclass
class ArmResult:
    model: str
    arm: str
    tokens_per_second: float
    mfu: float | None
    peak_memory_gib: float | None
    settings: dict[str, Any]


def run_trl_defaults(
    model_dir: Path, data: Path, scratch: Path, steps: int, batch: int, max_length: int, cuda: bool
) -> tuple[Meter, dict[str, Any]]:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from kubesft_trainer.model.templates import builtin_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = builtin_template("chatml").source
    tokenizer.pad_token = "<|pad|>"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    meter = Meter()
    cpu = {} if cuda else {"bf16": False, "use_cpu": True}
    args = SFTConfig(
        output_dir=str(scratch),
        max_steps=steps,
        per_device_train_batch_size=batch,
        max_length=max_length,
        eos_token="<|im_end|>",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        **cpu,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=load_dataset("json", data_files=str(data), split="train"),
        processing_class=tokenizer,
        callbacks=[meter.callback()],
    )
    trainer.train()
    settings = {
        "packing": args.packing,
        "padding_free": args.padding_free,
        "bf16": args.bf16,
        "attention": model.config._attn_implementation,
        "gradient_checkpointing": args.gradient_checkpointing,
        "use_liger_kernel": args.use_liger_kernel,
    }
    return meter, settings


def run_kubesft(
    model_dir: Path, data: Path, scratch: Path, steps: int, batch: int, max_length: int, cuda: bool
) -> tuple[Meter, dict[str, Any]]:
    from kubesft_api.trainer_config import TrainerConfig
    from kubesft_trainer.config.runtime_env import RuntimeEnv
    from kubesft_trainer.train import prepare

    config = TrainerConfig.model_validate(
        {
            "model": {"uri": str(model_dir), "chatTemplate": "chatml"},
            "dataset": {"uri": str(data)},
            "training": {
                "maxSteps": steps,
                "perDeviceBatchSize": batch,
                "maxLength": max_length,
                "packing": True,
                "loggingSteps": 1,
            },
            "checkpoints": {"saveSteps": steps * 10},
            "output": {"uri": str(scratch / "output")},
        }
    )
    env = RuntimeEnv.from_environ({"KUBESFT_WORK_DIR": str(scratch / "work")})
    meter = Meter()
    run = prepare(config, env, scratch / "checkpoints", callbacks=[meter.callback()], progress_bar=False)
    run.trainer.train()
    args = run.trainer.args
    settings = {
        "packing": args.packing,
        "padding_free": run.trainer.padding_free,
        "bf16": args.bf16,
        "attention": run.trainer.model.config._attn_implementation,
        "gradient_checkpointing": args.gradient_checkpointing,
        "use_liger_kernel": args.use_liger_kernel,
    }
    return meter, settings


ARMS: dict[str, Callable[..., tuple[Meter, dict[str, Any]]]] = {
    "trl-defaults": run_trl_defaults,
    "kubesft": run_kubesft,
}


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override is not None:
        return override
    return next((peak for name, peak in PEAK_BF16_TFLOPS.items() if name in device_name), None)


def mean_example_tokens(data: Path, model_dir: Path, max_length: int) -> float:
    from transformers import AutoTokenizer

    from kubesft_trainer.model.templates import builtin_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = builtin_template("chatml").source
    lengths = []
    for line in data.read_text().splitlines()[:512]:
        ids = tokenizer.apply_chat_template(
            json.loads(line)["messages"], chat_template=template, tokenize=True
        )
        if isinstance(ids, dict):
            ids = ids["input_ids"]
        lengths.append(min(len(ids), max_length))
    return statistics.fmean(lengths)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=[name for name in SHAPES if name != "tiny"],
        default=["smollm2-360m", "llama-1.7b"],
    )
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per arm")
    parser.add_argument("--warmup-steps", type=int, default=10, help="steps left out of the figures")
    parser.add_argument("--batch", type=int, default=8, help="per-device batch size")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--rows", type=int, default=4000, help="synthetic conversations")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the table")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU check of this script: a tiny model, a few steps, no figures worth reading",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/gpu_throughput.json")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.models, args.steps, args.warmup_steps = ["tiny"], 4, 1
        args.batch, args.max_length, args.rows = 4, 256, 64
    if args.warmup_steps + 2 > args.steps:
        parser.error("--steps must exceed --warmup-steps by at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print(
            "gpu_throughput: skipped, no CUDA GPU is visible (torch.cuda.is_available() is False); "
            "run it on a GPU machine, or pass --dry-run for a CPU check of the script",
            flush=True,
        )
        return 0
    device = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    peak = peak_tflops(device, args.peak_tflops) if cuda else None
    print(f"device: {device}; peak bf16: {f'{peak:.0f} TFLOP/s' if peak else 'unknown'}", flush=True)
    results: list[ArmResult] = []
    with tempfile.TemporaryDirectory(prefix="kubesft-gpu-bench-") as tmp:
        root = Path(tmp)
        from testing.tinymodel import build_tiny_model, write_jsonl

        tokenizer_dir = build_tiny_model(root / "tokenizer")
        data = write_jsonl(root / "chat.jsonl", synthetic_rows(args.rows, max_words=args.max_length // 2))
        for name in args.models:
            shape = SHAPES[name]
            model_dir = build_model(shape, tokenizer_dir, root / name, bf16=cuda)
            span = mean_example_tokens(data, model_dir, args.max_length)
            per_token = flops_per_token(shape, span)
            print(
                f"{name}: {matmul_parameters(shape) / 1e9:.2f}B matmul parameters, "
                f"{span:.0f} tokens per example on average, {per_token / 1e9:.2f} GFLOP per token",
                flush=True,
            )
            for arm in args.arms:
                if cuda:
                    gc.collect()  # the previous arm's model and optimizer, before measuring memory
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                scratch = root / f"{name}-{arm}"
                meter, settings = ARMS[arm](
                    model_dir, data, scratch, args.steps, args.batch, args.max_length, cuda
                )
                rate = meter.tokens_per_second(args.warmup_steps)
                mfu = rate * per_token / (peak * 1e12) if peak else None
                memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
                results.append(ArmResult(name, arm, rate, mfu, memory, settings))
                print(
                    f"{name} {arm}: {rate:,.0f} tokens/s"
                    + (f", MFU {mfu:.1%}" if mfu is not None else "")
                    + (f", peak memory {memory:.1f} GiB" if memory is not None else "")
                    + f" ({', '.join(f'{k}={v}' for k, v in settings.items())})",
                    flush=True,
                )
        for name in args.models:
            rates = {r.arm: r.tokens_per_second for r in results if r.model == name}
            if {"trl-defaults", "kubesft"} <= rates.keys():
                print(f"{name}: kubesft / trl-defaults = {rates['kubesft'] / rates['trl-defaults']:.2f}×")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "device": device,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "dryRun": args.dry_run,
                "steps": args.steps,
                "warmupSteps": args.warmup_steps,
                "batch": args.batch,
                "maxLength": args.max_length,
                "peakTflops": peak,
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
