"""How --validate shows an example: runs of trained and ignored tokens."""

from __future__ import annotations

from kubesft_trainer.data.example_view import loss_spans


def test_loss_spans_split_trained_and_ignored_runs() -> None:
    assert loss_spans([-100, -100, 5, 6, -100, 7]) == [
        (0, 2, False),
        (2, 4, True),
        (4, 5, False),
        (5, 6, True),
    ]
