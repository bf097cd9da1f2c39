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


def test_arguments_that_break_resume_or_the_output_layout_are_refused_with_the_reason() -> None:
    problems = extra_args_problems(
        ["save_only_model", "ignore_data_skip", "save_total_limit", "overwrite_output_dir"]
    )
    assert problems["save_only_model"].startswith("refused: checkpoints without the optimizer")
    assert problems["ignore_data_skip"] == "refused: a resumed run would train on the data it already saw"
    assert "spec.checkpoints.keep" in problems["save_total_limit"]
    # Not an argument of this TRL any more, still refused for what it would do.
    assert "overwrite_output_dir" not in SFT_CONFIG_FIELDS
    assert problems["overwrite_output_dir"].startswith("refused: kubesft owns the local output folder")
