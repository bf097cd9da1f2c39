"""The SFTJob spec model: valid examples parse, and every bad input names its field."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from kubesft_api.sftjob import InvalidSpecError, SFTJobSpec, parse_spec
from tests.support.specs import CEL_BAD_SPECS, VALID, WEBHOOK_BAD_SPECS, with_changes

EXAMPLES = sorted((pathlib.Path(__file__).parents[3] / "examples").glob("*.yaml"))

BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    (
        "steps as text",
        with_changes(training__maxSteps="many"),
        "spec.training.maxSteps: must be a valid integer",
    ),
    ("negative steps", with_changes(training__maxSteps=-5), "spec.training.maxSteps: must be ≥ 1"),
    ("zero steps", with_changes(training__maxSteps=0), "spec.training.maxSteps: must be ≥ 1"),
    ("zero epochs", with_changes(training__epochs=0), "spec.training.epochs: must be > 0"),
    (
        "learning rate as list",
        with_changes(training__learningRate=[1]),
        "spec.training.learningRate: must be a valid number",
    ),
    (
        "dataset both",
        with_changes(dataset__name="HuggingFaceTB/smoltalk"),
        "spec.dataset.uri: set either name or uri, not both",
    ),
    ("unknown format", with_changes(dataset__format="alpaca"), "spec.dataset.format: must be one of"),
    (
        "roles on messages data",
        with_changes(dataset__format="messages", dataset__roles={"bot": "assistant"}),
        "spec.dataset.roles: maps ShareGPT speakers; format is messages",
    ),
    (
        "sharegpt speaker mapped to no role",
        with_changes(dataset__format="sharegpt", dataset__roles={"bot": "robot"}),
        "spec.dataset.roles.bot: must be one of",
    ),
    (
        "asChat on text",
        with_changes(dataset__format="text", dataset__asChat=True),
        "spec.dataset.asChat: turns prompt-completion rows into chats; format is text",
    ),
    (
        "system prompt on text",
        with_changes(dataset__format="text", dataset__systemPrompt="Be brief."),
        "spec.dataset.systemPrompt: needs conversational data; dataset.format is text",
    ),
    (
        "mixture with a top-level source field",
        with_changes(
            dataset__uri=None, dataset__format="sharegpt", dataset__mixture=[{"uri": "s3://bucket/a.jsonl"}]
        ),
        "spec.dataset.format: with mixture, set it on each mixture entry",
    ),
    (
        "mixture entry without a source",
        with_changes(
            dataset__uri=None, dataset__mixture=[{"uri": "s3://bucket/a.jsonl"}, {"split": "train"}]
        ),
        "spec.dataset.mixture[1].name: set one of name or uri",
    ),
    (
        "mixture entry with a zero weight",
        with_changes(dataset__uri=None, dataset__mixture=[{"uri": "s3://bucket/a.jsonl", "weight": 0}]),
        "spec.dataset.mixture[0].weight: must be > 0",
    ),
    (
        "completion-only loss on ShareGPT data in a mixture",
        with_changes(
            dataset__uri=None,
            dataset__mixture=[
                {"uri": "s3://bucket/a.jsonl"},
                {"uri": "s3://bucket/b.jsonl", "format": "sharegpt"},
            ],
            training__completionOnlyLoss=True,
        ),
        "spec.training.completionOnlyLoss: applies to prompt-completion data",
    ),
    (
        "two evaluation sets of one name",
        with_changes(
            dataset__evalSets=[
                {"setName": "general", "uri": "s3://bucket/g.jsonl"},
                {"setName": "general", "name": "HuggingFaceTB/smoltalk"},
            ]
        ),
        "spec.dataset.evalSets[1].setName: general names two evaluation sets",
    ),
    (
        "eval fraction too big",
        with_changes(dataset__evalFraction=0.9),
        "spec.dataset.evalFraction: must be ≤ 0.5",
    ),
    (
        "inline secret env value",
        with_changes(resources__env=[{"name": "HF_TOKEN", "value": "hf_abc"}]),
        "spec.resources.env[0].value: HF_TOKEN looks like a secret",
    ),
    (
        "env setting what torchrun sets",
        with_changes(resources__env=[{"name": "A", "value": "1"}, {"name": "RANK", "value": "3"}]),
        "spec.resources.env[1].name: RANK is set by torchrun",
    ),
    (
        "env setting a torchrun prefix",
        with_changes(resources__env=[{"name": "TORCHELASTIC_RUN_ID", "value": "x"}]),
        "spec.resources.env[0].name: TORCHELASTIC_RUN_ID is set by torchrun",
    ),
    (
        "envFrom prefix reserved by kubesft",
        with_changes(resources__envFrom=[{"prefix": "KUBESFT_", "configMapRef": {"name": "c"}}]),
        "spec.resources.envFrom[0].prefix: KUBESFT_ makes every variable start with KUBESFT_",
    ),
    (
        "envFrom prefix that could form a reserved name",
        with_changes(
            resources__envFrom=[
                {"secretRef": {"name": "s"}},
                {"prefix": "MASTER_", "secretRef": {"name": "t"}},
            ]
        ),
        "spec.resources.envFrom[1].prefix: MASTER_ followed by a key could make MASTER_ADDR",
    ),
    (
        "envFrom prefix that could form a reserved prefix",
        with_changes(resources__envFrom=[{"prefix": "TORCH", "secretRef": {"name": "s"}}]),
        "spec.resources.envFrom[0].prefix: TORCH followed by a key could make TORCHELASTIC_*",
    ),
    (
        "extraArgs that break resume",
        with_changes(training__extraArgs={"save_only_model": True}),
        "spec.training.extraArgs: 'save_only_model' is refused: checkpoints without the optimizer",
    ),
    (
        "extraArgs that break the output layout",
        with_changes(training__extraArgs={"overwrite_output_dir": True}),
        "spec.training.extraArgs: 'overwrite_output_dir' is refused",
    ),
    (
        "completion-only loss on conversations",
        with_changes(dataset__format="messages", training__completionOnlyLoss=True),
        "spec.training.completionOnlyLoss: applies to prompt-completion data",
    ),
    (
        "inline template without a turn end",
        with_changes(model__chatTemplate="{% for m in messages %}{{ m['content'] }}\n{% endfor %}"),
        "spec.model.chatTemplate: cannot tell which token ends a turn",
    ),
    (
        "eosToken that contradicts chatml",
        with_changes(model__eosToken="</s>"),
        "spec.model.eosToken: chatml ends turns with <|im_end|>",
    ),
    (
        "negative maxEvalSamples",
        with_changes(dataset__maxEvalSamples=-1),
        "spec.dataset.maxEvalSamples: must be ≥ 0",
    ),
    (
        "resumeFrom on an unsupported scheme",
        with_changes(checkpoints__resumeFrom="gs://b/checkpoint-3"),
        "spec.checkpoints.resumeFrom: scheme 'gs://' is not supported",
    ),
    (
        "too many sample prompts",
        with_changes(evaluation={"samplePrompts": ["hi"] * 17}),
        "spec.evaluation.samplePrompts: must have at most 16 items",
    ),
    (
        "inline credentials",
        with_changes(checkpoints__credentialsSecret={"name": "s3", "secretAccessKey": "abc"}),
        "spec.checkpoints.credentialsSecret.secretAccessKey: unknown field",
    ),
    ("zero nodes", with_changes(resources__nodes=0), "spec.resources.nodes: must be ≥ 1"),
    ("lora rank zero", with_changes(lora__enabled=True, lora__r=0), "spec.lora.r: must be ≥ 1"),
    (
        "gs checkpoint uri",
        with_changes(checkpoints__uri="gs://bucket/ckpt"),
        "spec.checkpoints.uri: scheme 'gs://' is not supported",
    ),
    (
        "relative checkpoint path",
        with_changes(checkpoints__uri="ckpt/here"),
        "spec.checkpoints.uri: 'ckpt/here' is neither an absolute path nor a URI",
    ),
    ("unknown top-level field", with_changes(trainig={"maxSteps": 1}), "spec.trainig: unknown field"),
    ("bad precision", with_changes(training__precision="int4"), "spec.training.precision: must be one of"),
    ("keep zero", with_changes(checkpoints__keep=0), "spec.checkpoints.keep: must be ≥ 1"),
    ("saveSteps zero", with_changes(checkpoints__saveSteps=0), "spec.checkpoints.saveSteps: must be ≥ 1"),
    (
        "negative backoff",
        with_changes(runPolicy={"backoffLimit": -1}),
        "spec.runPolicy.backoffLimit: must be ≥ 0",
    ),
    (
        "short grace period",
        with_changes(runPolicy={"terminationGracePeriodSeconds": 5}),
        "spec.runPolicy.terminationGracePeriodSeconds: must be ≥ 30",
    ),
    (
        "bad memory quantity",
        with_changes(resources__memory="lots"),
        "spec.resources.memory: 'lots' does not match",
    ),
    (
        "endpoint without scheme",
        with_changes(checkpoints__endpointUrl="minio:9000"),
        "spec.checkpoints.endpointUrl: 'minio:9000' does not match",
    ),
    (
        "secret reference without name",
        with_changes(model__tokenSecret={"key": "HF_TOKEN"}),
        "spec.model.tokenSecret.name: required",
    ),
    (
        "queue name not a DNS label",
        with_changes(runPolicy={"queueName": "Team_A"}),
        "spec.runPolicy.queueName",
    ),
    (
        "empty LoRA target module",
        with_changes(lora={"enabled": True, "targetModules": ["q_proj", ""]}),
        "spec.lora.targetModules[1]: must not be empty",
    ),
    (
        "node selector value longer than a label value",
        with_changes(resources__nodeSelector={"pool": "x" * 64}),
        "spec.resources.nodeSelector.pool: must have at most 63 characters",
    ),
    (
        "unknown sharding",
        with_changes(training__sharding="zero3"),
        "spec.training.sharding: must be one of",
    ),
    (
        "QLoRA sharded by FSDP",
        with_changes(training__sharding="fsdp", lora={"enabled": True, "quantization": "4bit"}),
        "spec.training.sharding: fsdp cannot shard a 4bit quantized base (lora.quantization)",
    ),
    (
        "FSDP through extraArgs",
        with_changes(training__extraArgs={"fsdp_config": {"version": 2}}),
        "'fsdp_config' is set by kubesft; use spec.training.sharding",
    ),
    (
        "GPU memory hint not a quantity",
        with_changes(resources__gpuMemory="lots"),
        "spec.resources.gpuMemory: 'lots' does not match",
    ),
    *WEBHOOK_BAD_SPECS,
]


def test_there_are_at_least_twenty_bad_specs() -> None:
    assert len(BAD_SPECS) >= 20


@pytest.mark.parametrize(("case", "spec", "expected"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_rejected_with_field_path(case: str, spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(spec)
    assert any(expected in problem for problem in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("case", "spec", "field", "message"), CEL_BAD_SPECS, ids=[c[0] for c in CEL_BAD_SPECS]
)
def test_what_the_crds_cel_rules_refuse_the_model_refuses_at_the_same_field(
    case: str, spec: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(spec)
    assert any(p.startswith(f"{field}: ") and message in p for p in info.value.problems), info.value.problems


def test_valid_spec_parses_and_keeps_values() -> None:
    spec = parse_spec(VALID)
    assert spec.training.max_steps == 10
    assert spec.resources.gpus_per_node == 1
    assert spec.run_policy.backoff_limit == 3
    trainer = spec.trainer_config()
    assert trainer.checkpoints.uri == "s3://bucket/ckpt"
    assert not hasattr(trainer, "resources")


def test_new_settings_default_and_conversational_prompt_completion_takes_assistant_only_loss() -> None:
    spec = parse_spec(with_changes(dataset__format="prompt-completion", training__assistantOnlyLoss=True))
    assert spec.training.assistant_only_loss
    assert (spec.dataset.revision, spec.dataset.max_eval_samples) == ("main", 1000)
    assert spec.checkpoints.resume_from is None
    assert (spec.evaluation.sample_prompts, spec.evaluation.sample_count) == ([], 3)
    assert spec.evaluation.sample_max_new_tokens == 64
    assert spec.model.end_of_turn() == "<|im_end|>"
    inline = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    assert (
        parse_spec(with_changes(model__chatTemplate=inline, model__eosToken="<|end|>")).model.end_of_turn()
        == "<|end|>"
    )
    own = parse_spec(with_changes(model__chatTemplate=None))
    assert own.model.end_of_turn() is None, "the model's own template keeps the tokenizer's EOS"
    prefixed = [
        {"prefix": "HF_", "secretRef": {"name": "hf"}},
        {"prefix": "APP_", "configMapRef": {"name": "c"}},
    ]
    assert len(parse_spec(with_changes(resources__envFrom=prefixed)).resources.env_from) == 2


def test_several_problems_are_all_reported() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(with_changes(training__maxSteps=0, lora__r=0, resources__nodes=0))
    joined = "\n".join(info.value.problems)
    for path in ("spec.training.maxSteps", "spec.lora.r", "spec.resources.nodes"):
        assert path in joined


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid_sftjobs(path: pathlib.Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "kubesft.io/v1alpha1"
    assert doc["kind"] == "SFTJob"
    SFTJobSpec.model_validate(doc["spec"])


def test_examples_cover_the_documented_cases() -> None:
    specs = {p.name: SFTJobSpec.model_validate(yaml.safe_load(p.read_text())["spec"]) for p in EXAMPLES}
    assert any(
        s.model.name == "HuggingFaceTB/SmolLM2-135M"
        and s.model.chat_template == "chatml"
        and s.dataset.format == "messages"
        and s.training.assistant_only_loss
        for s in specs.values()
    )
    assert any(s.lora.enabled for s in specs.values())
    assert any(s.dataset.format == "prompt-completion" for s in specs.values())
    assert any(s.resources.nodes == 2 and s.resources.gpus_per_node == 8 for s in specs.values())
