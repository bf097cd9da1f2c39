"""Whole numbers from labels, annotations and environment variables."""

from __future__ import annotations

import pytest

from kubesft_api.integers import int_or


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3), (" 12 ", 12), ("-1", -1), ("+4", 4), (7, 7), (None, 5), ("", 5), ("  ", 5)],
)
def test_integers_and_unset_values(value: object, expected: int) -> None:
    assert int_or(value, 5) == expected
    assert int_or(value, 5, strict=True) == expected


@pytest.mark.parametrize("value", ["two", "1.5", "²", "0x10", True, 2.0])
def test_anything_else_is_the_default_unless_strict(value: object) -> None:
    assert int_or(value, -1) == -1
    with pytest.raises(ValueError, match="is not an integer"):
        int_or(value, -1, strict=True)
