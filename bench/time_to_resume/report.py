"""The lines ``run.py`` prints for one round of time_to_resume, and the spread over rounds."""

from __future__ import annotations

import statistics
from typing import Any

MB = 1e6


def apart_line(row: dict[str, Any]) -> list[str]:
    """The imports' share measured apart, where the run measured it."""
    if "importsApart" not in row:
        return []
    return [
        f"  measured apart, {len(row['importsApart']['importsAlone'])} pairs: the imports"
        f" {statistics.median(row['importsApart']['importsAlone']):.2f} s alone,"
        f" {statistics.median(row['importsApart']['importsBesideDownload']):.2f} s beside the download"
        f" ({statistics.median(row['importsApart']['downloadBesideImports']):.2f} s),"
        f" slower by {row['importsSlowdownApartSeconds']:+.2f} s (median of the pairs);"
        f" restore overhead with that share {row['restoreOverheadApartSeconds']:.2f} s:"
        f" {row['restoreApartOverGet']:.2f}x",
    ]


def report(row: dict[str, Any]) -> list[str]:
    phases = row["phaseSeconds"]
    plain = statistics.median(row["readBackSeconds"]["plainGet"])
    again = {arm: statistics.median(values) for arm, values in row["readBackSeconds"].items()}
    size = row["checkpointBytes"]
    files = ", ".join(
        f"{key} {value / MB:.1f}" for key, value in row["checkpointFiles"].items() if value > MB
    )
    fresh = row["freshPhaseSeconds"]["trainerStart"]
    return [
        f"checkpoint-{row['resumedFromStep']} (killed at step {row['stepAtKill']}): {size / MB:.1f} MB"
        f" ({files} MB; {len(row['checkpointFiles'])} objects)",
        f"  detection, pod Failed seen -> Job created: {row['detectionSeconds']:.2f} s"
        f"  (kill -> pod Failed {row['killToPodFailedSeconds']:.2f} s, kill -> Job {row['killToJobCreatedSeconds']:.2f} s)",
        f"  pod start, Job -> pod Running: {row['jobToPodRunningSeconds']:.2f} s,"
        f" Job -> trainer process: {row['jobToProcessStartSeconds']:.2f} s",
        f"  trainer: imports {phases['imports']:.2f} s, setup {phases['setup']:.2f} s,"
        f" model load {row['modelLoadSeconds']:.2f} s (files {phases['modelFiles']:.2f} + weights"
        f" {phases['modelLoad']:.2f}), data {phases['data']:.2f} s, tokenizing {phases['tokenizing']:.2f} s,"
        f" samples {phases['samples']:.2f} s",
        f"  checkpoint download + sha256 {row['downloadSeconds']:.2f} s ({size / MB / row['downloadSeconds']:.0f} MB/s)"
        f" beside {', '.join(row['phasesBesideTheDownload'])}, which took {row['besideSlowdownSeconds']:+.2f} s"
        f" more than in the killed attempt (the imports {row['importsSlowdownSeconds']:+.2f} s); left to wait for:"
        f" {row['downloadWaitSeconds']:.2f} s",
        f"  restore {phases['checkpointRestore']:.2f} s"
        f" (the killed attempt's trainerStart {fresh:.2f} s: loading {row['checkpointLoadSeconds']:.2f} s)",
        f"  first new optimizer step: {phases['firstStep']:.2f} s; kill -> end of it: {row['killToFirstStepSeconds']:.1f} s",
        f"  restore overhead (slowdown beside the download + wait + loading) {row['restoreOverheadSeconds']:.2f} s"
        f" vs plain get_object {plain:.2f} s ({size / MB / plain:.0f} MB/s): {row['restoreOverGet']:.2f}x"
        f" (the download on its own {row['downloadOverGet']:.2f}x; download + loading one after the other"
        f" {row['serialRestoreOverGet']:.2f}x; with the whole restore phase {row['restorePhaseOverGet']:.2f}x)",
        "  read back from here, median: "
        + ", ".join(f"{arm} {value:.2f} s ({size / MB / value:.0f} MB/s)" for arm, value in again.items()),
        f"  storeWholeObjects + loading vs plain get_object: {row['wholeObjectsRestoreOverGet']:.2f}x",
        *apart_line(row),
    ]


def spread(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [float(row[key]) for row in rows]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


RESTORE_TARGET = 1.2
"""The restore overhead's target: at most this many times the plain GETs of the same bytes."""


def verdict(figure: dict[str, float]) -> str:
    """The restore overhead's verdict over the rounds' ``spread``. A round below zero means the
    attempts' phase differences, which the figure adds, varied by more than the checkpoint costs:
    the figure is noise there, and no verdict holds."""
    if figure["min"] < 0:
        return "not judged (a round below 0)"
    return "met" if figure["median"] <= RESTORE_TARGET else "missed"
