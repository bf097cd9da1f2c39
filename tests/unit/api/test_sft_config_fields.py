"""The generated list of SFTConfig fields the spec checks extraArgs against is TRL's own."""

from __future__ import annotations

import dataclasses

from kubesft_api.sft_config_fields import SFT_CONFIG_FIELDS, extra_args_problems


def test_sft_config_field_list_matches_installed_trl() -> None:
    from trl import SFTConfig

    live = {f.name for f in dataclasses.fields(SFTConfig) if f.init}
    assert live == set(SFT_CONFIG_FIELDS), "run `make crds` to refresh sft_config_fields.py"


def test_extra_args_problems_name_the_spec_field_or_the_closest_arguments() -> None:
    problems = extra_args_problems(["weight_decey", "learning_rate", "weight_decay"], trl_version="9.9")
    assert problems == {
        "learning_rate": "set by kubesft; use spec.training.learningRate",
        "weight_decey": "not an SFTConfig argument of TRL 9.9 (did you mean weight_decay?)",
    }
    # The trainer checks against the TRL it runs, whose arguments may differ from the generated list.
    assert extra_args_problems(["adam_beta1", "weight_decay"], known={"adam_beta2", "seed"}) == {
        "adam_beta1": "not an SFTConfig argument (did you mean adam_beta2?)",
        "weight_decay": "not an SFTConfig argument",
    }
