"""The generated list of SFTConfig fields the spec checks extraArgs against is TRL's own."""

from __future__ import annotations

import dataclasses

from kubesft_api.sft_config_fields import SFT_CONFIG_FIELDS


def test_sft_config_field_list_matches_installed_trl() -> None:
    from trl import SFTConfig

    live = {f.name for f in dataclasses.fields(SFTConfig) if f.init}
    assert live == set(SFT_CONFIG_FIELDS), "run `make crds` to refresh sft_config_fields.py"
