"""The operator (``python -m kubesft_operator``) under cProfile and tracemalloc, for ``run.py --profile``.

Writes into $KUBESFT_BENCH_PROFILE_DIR: on SIGUSR1, ``memory.txt`` (live Python memory by the
file that allocated it); on exit, ``cpu.prof`` and ``cpu.txt`` (the event loop thread's
functions by cumulative and by own CPU time).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from testing.devcluster.operator_as_in_its_image import hide_what_the_image_lacks

OUT = Path(os.environ["KUBESFT_BENCH_PROFILE_DIR"])


def write_memory(signum: int, frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("filename")
    total = sum(stat.size for stat in stats)
    lines = [f"traced Python memory {total / 2**20:.1f} MiB"]
    lines += [f"{s.size / 2**20:8.2f} MiB {s.count:8d}  {s.traceback[0].filename}" for s in stats[:30]]
    (OUT / "memory.txt").write_text("\n".join(lines) + "\n")


def write_cpu(profile: cProfile.Profile) -> None:
    profile.dump_stats(OUT / "cpu.prof")
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(40)
    (OUT / "cpu.txt").write_text(text.getvalue())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tracemalloc.start()
    signal.signal(signal.SIGUSR1, write_memory)
    hide_what_the_image_lacks()
    from kubesft_operator.__main__ import main as operator_main

    # The thread's CPU time, not wall time: on a busy machine a function descheduled midway would
    # otherwise be charged for the other processes' time.
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    try:
        operator_main()
    finally:
        profile.disable()
        write_cpu(profile)


if __name__ == "__main__":
    main()
