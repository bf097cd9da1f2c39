"""kubesft's trainer against a plain TRL SFTTrainer script: tokens per second of the training loop.

Both train the same tiny Llama (built here, random weights) on the same conversations with the
same settings (ChatML, assistant-only loss, batch 8, max length 256, fp32 on CPU), each in its
own process, alternating, several rounds. kubesft's figure is ``tokensPerSecond`` from its
``training_summary.json``; the script's is the same quantity (TRL's token count over
``train_runtime``), so start-up, data checks and output writing are outside both. Both save one
checkpoint, at the last step (TRL's default save strategy; kubesft's saveSteps is beyond the run).

Printed: each round, the medians, and the ratio script / kubesft (1.00 = no overhead; the target
is at most 1.05). Figures also go to ``bench/out/trainer_overhead.json``.

Run: ``python bench/trainer_overhead/run.py [--rounds 2] [--steps 60]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from bench.common import run_trainer, tiny_config, training_env, write_figures  # noqa: E402
from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl  # noqa: E402


def run_kubesft(model: Path, data: Path, scratch: Path, steps: int) -> float:
    config = tiny_config(model, data, scratch / "kubesft-out", steps, assistantOnlyLoss=True)
    config["checkpoints"] = {"saveSteps": steps * 10}
    return float(run_trainer(config, scratch)["tokensPerSecond"])


def run_script(model: Path, data: Path, scratch: Path, steps: int) -> float:
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("raw_sft.py")),
            str(model),
            str(data),
            str(scratch / "raw"),
            str(steps),
        ],
        env=training_env(scratch / "work"),
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["tokensPerSecond"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubesft-bench-") as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "model", hidden_size=256, layers=4)
        data = write_jsonl(root / "chat.jsonl", chat_rows(512))
        rounds = []
        for number in range(args.rounds):
            # Alternate which goes first so a warming machine favours neither.
            order = [("script", run_script), ("kubesft", run_kubesft)]
            if number % 2:
                order.reverse()
            figures = {}
            for name, runner in order:
                scratch = root / f"round-{number}-{name}"
                scratch.mkdir()
                figures[name] = runner(model, data, scratch, args.steps)
            rounds.append(figures)
            print(
                f"round {number + 1}: script {figures['script']:,.0f} tokens/s, "
                f"kubesft {figures['kubesft']:,.0f} tokens/s",
                flush=True,
            )
    script = statistics.median(r["script"] for r in rounds)
    kubesft = statistics.median(r["kubesft"] for r in rounds)
    ratio = script / kubesft
    print(f"median: script {script:,.0f} tokens/s, kubesft {kubesft:,.0f} tokens/s")
    print(f"ratio script/kubesft: {ratio:.3f} (target ≤ 1.05)")
    medians = {"medianScriptTokensPerSecond": script, "medianKubesftTokensPerSecond": kubesft}
    write_figures("trainer_overhead", {"rounds": rounds, **medians, "ratio": ratio, "steps": args.steps})


if __name__ == "__main__":
    main()
