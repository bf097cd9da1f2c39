"""Speed settings chosen for the hardware and the installed kernels, below what extraArgs set."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesft_trainer.config.sft_args import installed_sft_fields, sft_kwargs
from tests.support.trainer import parsed_config


def test_speed_settings_follow_the_hardware_and_the_installed_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubesft_trainer.config.tuning import Accelerator, attention_implementation, tuned_sft_defaults

    cpu = Accelerator(cuda=False)
    ampere = Accelerator(cuda=True, capability=(8, 0))
    turing = Accelerator(cuda=True, capability=(7, 5))
    assert Accelerator.detect() == cpu, "this machine has no CUDA GPU"
    for name in ("flash_attn", "liger_kernel"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    assert attention_implementation(ampere, packing=True) == "sdpa"
    assert tuned_sft_defaults(ampere) == {}

    # The packages' presence is all kubesft looks at before handing them to transformers and TRL.
    monkeypatch.syspath_prepend(str(tmp_path))
    assert attention_implementation(ampere, packing=True) == "flash_attention_2"
    assert attention_implementation(ampere, packing=False) == "sdpa"
    assert attention_implementation(cpu, packing=True) == "sdpa"
    assert tuned_sft_defaults(ampere) == {"use_liger_kernel": True}
    assert tuned_sft_defaults(turing) == {}, "Liger's kernels fail before Ampere"
    assert tuned_sft_defaults(cpu) == {}

    cfg = parsed_config(extraArgs={"use_liger_kernel": False})
    kwargs = sft_kwargs(
        cfg,
        output_dir=tmp_path,
        has_eval=False,
        progress_bar=False,
        installed=installed_sft_fields(),
        cuda=True,
        precision="bf16",
        tuned=tuned_sft_defaults(ampere),
    )
    assert kwargs["use_liger_kernel"] is False, "extraArgs override the speed settings"
    assert kwargs["bf16"] is True
