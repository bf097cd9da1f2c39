"""Which rows of a source are used: seeded samples, the evaluation hold-out, and repeats for weights."""

from __future__ import annotations

from kubesft_trainer.errors import DataError


def sample(indices: list[int], limit: int | None, seed: int) -> list[int]:
    """A seeded random ``limit`` of ``indices`` (all of them without a limit), in their order."""
    import numpy as np

    if not limit or len(indices) <= limit:
        return indices
    chosen = np.random.default_rng(seed).permutation(len(indices))[:limit]
    return sorted(indices[int(i)] for i in chosen)


def hold_out(
    indices: list[int], fraction: float | None, max_eval: int, seed: int, where: str
) -> tuple[list[int], list[int]]:
    """Train and eval row indices, the eval ones a seeded random ``fraction`` of ``indices``,
    at most ``max_eval`` of them (0: no cap): the rest stay in training."""
    import numpy as np

    if fraction is None:
        return indices, []
    count = len(indices)
    held = min(max(1, round(count * fraction)), count - 1)
    if max_eval:
        held = min(held, max_eval)
    if held < 1:
        raise DataError(
            f"dataset.evalFraction: {count} row(s) of {where} are too few to hold any out for evaluation"
        )
    order = np.random.default_rng(seed).permutation(count)
    return sorted(indices[int(i)] for i in order[held:]), sorted(indices[int(i)] for i in order[:held])


def weighted_count(count: int, weight: float | None) -> int:
    """How many rows a weight asks for: at least one of a source that has any."""
    if weight is None:
        return count
    return max(1, round(count * weight)) if count else 0


def repeated(count: int, wanted: int, seed: int) -> list[int]:
    """Positions ``0..count-1`` taken ``wanted`` times in all: whole copies, then a seeded random rest."""
    import numpy as np

    copies, rest = divmod(wanted, count)
    positions = [position for _ in range(copies) for position in range(count)]
    positions += sorted(int(i) for i in np.random.default_rng(seed).permutation(count)[:rest])
    return positions
