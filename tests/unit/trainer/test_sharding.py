"""What training.sharding turns into: SFTConfig's FSDP arguments, the block class to shard, and
the combinations refused before anything is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubesft_trainer.config.sft_args import build_sft_config, installed_sft_fields, sft_kwargs
from kubesft_trainer.config.sharding import (
    block_class_name,
    check_sharded_attention,
    check_sharding_device,
    fsdp_sft_kwargs,
    sharded,
)
from kubesft_trainer.errors import ConfigError
from tests.support.trainer import parsed_config


@pytest.fixture(autouse=True)
def _fsdp_environment_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsdp_sft_kwargs sets ACCELERATE_USE_FSDP for the process; later tests in this process train
    unsharded and would otherwise build an FSDP plugin. setenv before delenv records the variable's
    absence, so teardown removes what the code under test set."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.delenv("ACCELERATE_USE_FSDP")


def test_fsdp_shards_with_fsdp2_checkpointing_activations_itself_in_sharded_checkpoints() -> None:
    config = parsed_config(sharding="fsdp", gradientCheckpointing=True)
    installed = installed_sft_fields()
    kwargs = sft_kwargs(
        config,
        output_dir=Path("/tmp/x"),
        has_eval=False,
        progress_bar=False,
        installed=installed,
        cuda=False,
        precision="fp32",
        sharding=fsdp_sft_kwargs(config.training, nnodes=1, nproc_per_node=2),
    )
    fsdp_config = kwargs["fsdp_config"]
    assert kwargs["fsdp"] is True
    assert fsdp_config["version"] == 2
    assert fsdp_config["activation_checkpointing"] is True
    assert fsdp_config["cpu_ram_efficient_loading"] is True
    assert fsdp_config["state_dict_type"] == "SHARDED_STATE_DICT"
    # The Trainer's own checkpointing is off: transformers refuses both at once.
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in installed else "gradient_checkpointing"
    )
    assert kwargs[checkpointing] is False
    assert "parallelism_config" not in kwargs
    # transformers' loading reads this to load the checkpoint on each node's first process only.
    assert os.environ["ACCELERATE_USE_FSDP"] == "true"
    plugin = build_sft_config(kwargs).fsdp_plugin_args
    assert plugin["fsdp_version"] == 2 and plugin["state_dict_type"] == "SHARDED_STATE_DICT"
    assert plugin["activation_checkpointing"] is True and plugin["cpu_ram_efficient_loading"] is True


def test_fsdp_hybrid_shards_within_a_node_and_replicates_across_nodes() -> None:
    kwargs = fsdp_sft_kwargs(parsed_config(sharding="fsdp-hybrid").training, nnodes=2, nproc_per_node=8)
    parallelism = kwargs["parallelism_config"]
    assert (parallelism.dp_replicate_size, parallelism.dp_shard_size) == (2, 8)
    # accelerate 1.15 refuses a ParallelismConfig on CPU (MULTI_CPU); the trainer says so first.
    with pytest.raises(ConfigError, match=r"^training\.sharding: fsdp-hybrid needs GPUs"):
        check_sharding_device(parsed_config(sharding="fsdp-hybrid").training, cuda=False)
    check_sharding_device(parsed_config(sharding="fsdp-hybrid").training, cuda=True)
    check_sharding_device(parsed_config(sharding="fsdp").training, cuda=False)


def test_a_single_process_job_trains_unsharded_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    training = parsed_config(sharding="fsdp").training
    assert not sharded(training, world_size=1, planned_processes=1)
    assert "nothing to shard over" in caplog.text
    caplog.clear()
    # --validate runs one process of a larger job: no warning, no sharding in that process.
    assert not sharded(training, world_size=1, planned_processes=16)
    assert caplog.text == ""
    assert sharded(training, world_size=2, planned_processes=2)
    assert not sharded(parsed_config().training, world_size=2, planned_processes=2)


def test_padding_free_needs_a_varlen_kernel_when_sharded(caplog: pytest.LogCaptureFixture) -> None:
    padding_free = parsed_config(sharding="fsdp", packing=True, paddingFree=True).training
    with pytest.raises(
        ConfigError, match=r"^training\.paddingFree: with sharding: fsdp it needs FlashAttention 2"
    ):
        check_sharded_attention(padding_free, "sdpa")
    check_sharded_attention(padding_free, "flash_attention_2")
    check_sharded_attention(parsed_config(sharding="fsdp", packing=True).training, "sdpa")
    assert "packed samples can attend to each other" in caplog.text


def test_the_block_class_to_shard_is_found_in_the_model(model: Path) -> None:
    from torch import nn
    from transformers import AutoModelForCausalLM

    assert block_class_name(AutoModelForCausalLM.from_pretrained(model)) == "LlamaDecoderLayer"
    with pytest.raises(ConfigError, match="no list of repeated transformer blocks"):
        block_class_name(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
