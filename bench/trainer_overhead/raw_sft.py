"""The baseline: a plain TRL SFTTrainer script, written as a user would, on the same model and data.

Usage: ``python raw_sft.py MODEL_DIR DATA.jsonl OUTPUT_DIR STEPS``; prints one JSON line with the
training loop's tokens per second.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

CHATML = (
    Path(__file__).resolve().parents[2] / "trainer_image/kubesft_trainer/model/templates/chatml.jinja"
).read_text()


def main() -> None:
    model_dir, data_file, output_dir, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = CHATML
    tokenizer.pad_token = "<|pad|>"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    dataset = load_dataset("json", data_files=data_file, split="train")
    args = SFTConfig(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        max_length=256,
        assistant_only_loss=True,
        eos_token="<|im_end|>",
        activation_checkpointing=False,
        bf16=False,
        use_cpu=True,
        logging_steps=10,
        # TRL's default save strategy, as in kubesft's run: one checkpoint, at the last step.
        report_to="none",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    tokens = next(e["num_tokens"] for e in reversed(trainer.state.log_history) if "num_tokens" in e)
    runtime = result.metrics["train_runtime"]
    print(json.dumps({"tokens": tokens, "trainRuntimeSeconds": runtime, "tokensPerSecond": tokens / runtime}))


if __name__ == "__main__":
    main()
