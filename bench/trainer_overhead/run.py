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
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from testing.tinymodel import build_tiny_model, chat_rows, write_jsonl  # noqa: E402


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBESFT_")}
    env.update({"KUBESFT_WORK_DIR": str(work), "KUBESFT_METRICS_PORT": "0", "HF_HUB_OFFLINE": "1"})
    return env


def run_kubesft(model: Path, data: Path, scratch: Path, steps: int) -> float:
    output = scratch / "kubesft-out"
    config = {
        "model": {"uri": str(model), "chatTemplate": "chatml"},
        "dataset": {"uri": str(data)},
        "training": {
            "maxSteps": steps,
            "perDeviceBatchSize": 8,
            "learningRate": 1.0e-3,
            "maxLength": 256,
            "assistantOnlyLoss": True,
            "gradientCheckpointing": False,
            "loggingSteps": 10,
        },
        "checkpoints": {"saveSteps": steps * 10},
        "output": {"uri": str(output)},
    }
    path = scratch / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    subprocess.run(
        [sys.executable, "-m", "kubesft_trainer", "--config", str(path)],
        env=_env(scratch / "work"),
        check=True,
        capture_output=True,
    )
    summary = json.loads((output / "training_summary.json").read_text())
    return float(summary["tokensPerSecond"])


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
        env=_env(scratch / "work"),
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
    out = ROOT / "bench/out/trainer_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rounds": rounds,
                "medianScriptTokensPerSecond": script,
                "medianKubesftTokensPerSecond": kubesft,
                "ratio": ratio,
                "steps": args.steps,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
