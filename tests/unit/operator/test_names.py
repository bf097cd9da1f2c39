"""Child object names: deterministic, and valid DNS labels even for the longest SFTJob names."""

from __future__ import annotations

from kubesft_operator import names


def test_names_are_deterministic_and_valid_for_long_sftjob_names() -> None:
    long = "a" * 63
    first, again = names.job_name(long, 12), names.job_name(long, 12)
    assert first == again and first.endswith("-12")
    assert len(first) + len("-255") <= 63
    assert names.is_dns_label(first)
    assert names.job_name(long, 12) != names.job_name("a" * 62 + "b", 12)
    assert names.service_name("9lives")[0].isalpha()
    assert len(names.service_name(long)) <= 63
