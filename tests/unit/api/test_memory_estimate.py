"""The per-GPU memory estimate: the 16 bytes per parameter of full fine-tuning, what sharding divides,
what LoRA and activation checkpointing save, and the warning against the GPU's memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesft_api.memory_estimate import (
    GIB,
    ModelShape,
    estimate_for_job,
    estimate_memory,
    gpu_memory_gib,
    quantity_bytes,
)
from kubesft_api.resources import Resources
from kubesft_api.sftjob import SFTJobSpec
from kubesft_api.trainer_config import TrainerConfig

EXAMPLES = Path(__file__).parents[3] / "examples"

LLAMA_8B = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}


def _config(lora: dict[str, Any] | None = None, **training: Any) -> TrainerConfig:
    raw: dict[str, Any] = {
        "model": {"name": "meta-llama/Llama-3.1-8B"},
        "dataset": {"name": "org/data"},
        "output": {"uri": "s3://bucket/out"},
        "training": {"perDeviceBatchSize": 1, "maxLength": 4096, **training},
    }
    if lora:
        raw["lora"] = lora
    return TrainerConfig.model_validate(raw)


def test_the_shape_of_llama_8b_counts_its_eight_billion_parameters() -> None:
    shape = ModelShape.from_hf_config(LLAMA_8B)
    assert shape.parameters == pytest.approx(8.03e9, rel=0.001)
    assert shape.kv_size == 1024
    assert ModelShape.from_hf_config(LLAMA_8B, parameters=123).parameters == 123
    with pytest.raises(ValueError, match="hidden_size"):
        ModelShape.from_hf_config({"vocab_size": 10})


def test_full_fine_tuning_needs_sixteen_bytes_per_parameter_and_fsdp_divides_them() -> None:
    shape = ModelShape.from_hf_config(LLAMA_8B)
    ddp = estimate_memory(shape, _config(), nodes=2, gpus_per_node=8)
    state = ddp.weights_gib + ddp.gradients_gib + ddp.optimizer_gib
    assert state * GIB == pytest.approx(16 * shape.parameters)
    assert ddp.shards == 1 and ddp.gathered_gib == 0
    fsdp = estimate_memory(shape, _config(sharding="fsdp"), nodes=2, gpus_per_node=8)
    assert fsdp.shards == 16
    assert (fsdp.weights_gib + fsdp.gradients_gib + fsdp.optimizer_gib) == pytest.approx(state / 16)
    assert fsdp.gathered_gib > 0
    hybrid = estimate_memory(shape, _config(sharding="fsdp-hybrid"), nodes=2, gpus_per_node=8)
    assert hybrid.shards == 8
    assert ddp.total_gib > 80 > hybrid.total_gib > fsdp.total_gib


def test_lora_trains_a_small_share_and_keeps_the_base_in_the_compute_dtype() -> None:
    shape = ModelShape.from_hf_config(LLAMA_8B)
    lora = estimate_memory(shape, _config(lora={"enabled": True, "r": 16}), nodes=1, gpus_per_node=1)
    assert 0 < lora.trainable_parameters < shape.parameters / 100
    assert lora.weights_gib == pytest.approx((shape.parameters * 2 + lora.trainable_parameters * 4) / GIB)
    qlora = estimate_memory(
        shape, _config(lora={"enabled": True, "quantization": "4bit"}), nodes=1, gpus_per_node=1
    )
    assert qlora.weights_gib < lora.weights_gib / 3
    assert qlora.total_gib < lora.total_gib < 80


def test_activation_checkpointing_keeps_one_tensor_per_layer() -> None:
    shape = ModelShape.from_hf_config(LLAMA_8B)
    on = estimate_memory(shape, _config(sharding="fsdp"), nodes=2, gpus_per_node=8)
    off = estimate_memory(
        shape, _config(sharding="fsdp", gradientCheckpointing=False), nodes=2, gpus_per_node=8
    )
    assert on.activations_gib == on.activations_checkpointed_gib < on.activations_full_gib / 5
    assert off.activations_gib == off.activations_full_gib
    doubled = estimate_memory(shape, _config(sharding="fsdp", perDeviceBatchSize=2), nodes=2, gpus_per_node=8)
    assert doubled.activations_gib == pytest.approx(2 * on.activations_gib)
    assert doubled.logits_gib == pytest.approx(2 * on.logits_gib)


def test_an_estimate_above_the_gpu_memory_warns_with_what_to_change() -> None:
    shape = ModelShape.from_hf_config(LLAMA_8B)
    ddp = estimate_memory(shape, _config(), nodes=2, gpus_per_node=8, gpu_memory=80)
    assert ddp.warning is not None and "exceeds the GPU's 80 GiB" in ddp.warning
    assert "training.sharding: fsdp" in ddp.warning
    assert any(line.startswith("warning: ") for line in ddp.lines())
    assert estimate_memory(shape, _config(sharding="fsdp"), 2, 8, gpu_memory=80).warning is None


def test_gpu_memory_comes_from_the_hint_or_a_gpu_label_of_the_node_selector() -> None:
    assert quantity_bytes("80Gi") == 80 * GIB
    assert quantity_bytes("81920Mi") == 80 * GIB
    with pytest.raises(ValueError, match="lots"):
        quantity_bytes("lots")
    assert gpu_memory_gib(Resources(gpu_memory="40Gi")) == 40
    product = Resources(node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    assert gpu_memory_gib(product) == pytest.approx(74.5, abs=0.1)
    assert gpu_memory_gib(Resources(node_selector={"nvidia.com/gpu.memory": "81559"})) == pytest.approx(
        79.6, abs=0.1
    )
    assert gpu_memory_gib(Resources(node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"})) == 22
    assert gpu_memory_gib(Resources(node_selector={"pool": "gpu-80gb"})) is None
    assert gpu_memory_gib(Resources()) is None


def test_a_job_spec_is_estimated_on_its_gpus_against_its_hint() -> None:
    spec = SFTJobSpec.model_validate(
        {
            **_config().model_dump(by_alias=True, exclude_none=True),
            "resources": {"nodes": 2, "gpusPerNode": 8, "gpuMemory": "80Gi"},
        }
    )
    estimate = estimate_for_job(ModelShape.from_hf_config(LLAMA_8B), spec, spec.resources)
    assert estimate.world_size == 16 and estimate.gpu_memory_gib == 80
    assert estimate.warning is not None
    dumped = estimate.model_dump(by_alias=True)
    assert {"weightsGib", "optimizerGib", "activationsFullGib", "totalGib"} <= set(dumped)


QWEN3_1_7B = {
    "architectures": ["Qwen3ForCausalLM"],
    "hidden_size": 2048,
    "head_dim": 128,
    "intermediate_size": 6144,
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
}


@pytest.mark.parametrize(
    ("example", "config"), [("multinode-2x8.yaml", LLAMA_8B), ("fsdp-1.7b.yaml", QWEN3_1_7B)]
)
def test_the_fsdp_examples_fit_their_gpus_by_the_estimate_and_would_not_unsharded(
    example: str, config: dict[str, Any]
) -> None:
    raw = yaml.safe_load((EXAMPLES / example).read_text())["spec"]
    spec = SFTJobSpec.model_validate(raw)
    shape = ModelShape.from_hf_config(config)
    assert spec.training.sharding == "fsdp" and not spec.lora.enabled
    sharded = estimate_for_job(shape, spec, spec.resources)
    assert sharded.warning is None and sharded.gpu_memory_gib is not None
    assert sharded.total_gib < sharded.gpu_memory_gib
    unsharded = spec.model_copy(update={"training": spec.training.model_copy(update={"sharding": "none"})})
    assert estimate_for_job(shape, unsharded, spec.resources).warning is not None
