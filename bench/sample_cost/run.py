"""What the before/after samples cost: their time as a share of the training run.

kubesft answers ``evaluation.sampleCount`` (3) prompts before and after training, greedily, up to
``evaluation.sampleMaxNewTokens`` (64) new tokens each. This trains a tiny Llama (built here,
random weights) with the default evaluation and training settings on 512 conversations (one
epoch: 64 steps of 8), through ``python -m kubesft_trainer``, and divides ``sampleSeconds`` by
``trainRuntimeSeconds`` from its ``training_summary.json``. The target is under 2 % with default
settings on a GPU; on a CPU the share is an upper bound of little meaning for real runs, whose
steps take far longer than a tiny model's while the samples stay 6 bounded greedy decodes.

Printed: each round and the median share. Figures also go to ``bench/out/sample_cost.json``.

Run: ``python bench/sample_cost/run.py [--rounds 2] [--rows 512] [--threads N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from bench.common import run_trainer, write_figures  # noqa: E402
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl  # noqa: E402


def run_once(model: Path, data: Path, scratch: Path, threads: int | None) -> dict[str, float]:
    # The trainer's defaults but for assistant-only loss: what a default run spends on samples.
    config = {
        "model": {"uri": str(model), "chatTemplate": "chatml"},
        "dataset": {"uri": str(data)},
        "training": {"assistantOnlyLoss": True},
        "output": {"uri": str(scratch / "out")},
    }
    summary = run_trainer(config, scratch)
    return {
        "sampleSeconds": float(summary["sampleSeconds"]),
        "trainRuntimeSeconds": float(summary["trainRuntimeSeconds"]),
        "steps": float(summary["globalStep"]),
        "share": float(summary["sampleSeconds"]) / float(summary["trainRuntimeSeconds"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads of the trainer (OMP_NUM_THREADS); on a busy machine more threads than "
        "free cores slow the decoding's many small steps far more than training",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubesft-bench-") as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "model", hidden_size=256, layers=4)
        data = write_jsonl(root / "chat.jsonl", chat_rows(args.rows))
        rounds = []
        for number in range(args.rounds):
            scratch = root / f"round-{number}"
            scratch.mkdir()
            figures = run_once(model, data, scratch, args.threads)
            rounds.append(figures)
            print(
                f"round {number + 1}: samples {figures['sampleSeconds']:.2f} s, training "
                f"{figures['trainRuntimeSeconds']:.1f} s over {figures['steps']:.0f} steps: "
                f"{100 * figures['share']:.1f} %",
                flush=True,
            )
    share = statistics.median(r["share"] for r in rounds)
    print(f"median share of the run spent on samples: {100 * share:.1f} % (target on a GPU: < 2 %)")
    write_figures("sample_cost", {"rounds": rounds, "medianShare": share, "threads": args.threads})


if __name__ == "__main__":
    main()
