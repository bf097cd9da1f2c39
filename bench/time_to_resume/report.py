"""The lines ``run.py`` prints for one round of time_to_resume, and the spread over rounds."""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import pair_differences

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
        f"  restore {phases['checkpointRestore']:.2f} s and first step {phases['firstStep']:.2f} s against the"
        f" killed attempt's trainerStart {fresh:.2f} s and first step {row['freshPhaseSeconds']['firstStep']:.2f} s:"
        f" loading {row['checkpointLoadSeconds']:+.2f} s (the restore phase alone"
        f" {row['restoreLessTrainerStartSeconds']:+.2f} s)",
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

SPREAD_KEYS = (
    "detectionSeconds",
    "killToJobCreatedSeconds",
    "jobToPodRunningSeconds",
    "jobToProcessStartSeconds",
    "modelLoadSeconds",
    "restoreOverheadSeconds",
    "restoreOverGet",
    "importsSlowdownApartSeconds",
    "otherPhasesSlowdownSeconds",
    "restoreOverheadApartSeconds",
    "restoreApartOverGet",
    "downloadSeconds",
    "downloadWaitSeconds",
    "besideSlowdownSeconds",
    "importsSlowdownSeconds",
    "downloadOverGet",
    "serialRestoreOverGet",
    "restorePhaseOverGet",
    "checkpointLoadSeconds",
    "restoreLessTrainerStartSeconds",
    "checkpointLoadApartSeconds",
    "wholeObjectsRestoreOverGet",
    "killToFirstStepSeconds",
)


def pooled(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """The restore overhead over all rounds at once: each part's median over every measurement of
    it (the imports' pairs of every round, each round's loading, the plain GETs of every round),
    then their sum over the median plain GET. A round's own figure rests on 3 to 5 pairs of imports
    that vary by a second or more; the pooled medians rest on all of them. None without the
    imports measured apart. The loading counts at least zero."""
    if not rows or not all("importsApart" in row for row in rows):
        return None
    slowdowns = [
        value
        for row in rows
        for value in pair_differences(
            row["importsApart"]["importsAlone"], row["importsApart"]["importsBesideDownload"]
        )
    ]
    loadings = [
        value
        for row in rows
        for value in pair_differences(row["loadingApart"]["without"], row["loadingApart"]["withCheckpoint"])
    ]
    parts = {
        "importsSlowdownSeconds": statistics.median(slowdowns),
        "otherPhasesSlowdownSeconds": statistics.median(row["otherPhasesSlowdownSeconds"] for row in rows),
        "waitSeconds": statistics.median(row["downloadWaitSeconds"] for row in rows),
        # Where loading comes out below zero (a resumed start no slower than a fresh one) it counts
        # as nothing: it must not offset what the download costs.
        "loadingSeconds": max(0.0, statistics.median(row["checkpointLoadSeconds"] for row in rows)),
    }
    overhead = sum(parts.values())
    plain = statistics.median(value for row in rows for value in row["readBackSeconds"]["plainGet"])
    return {
        **parts,
        "importPairs": len(slowdowns),
        "loadingApartSeconds": statistics.median(loadings),
        "loadingPairs": len(loadings),
        "restoreOverheadSeconds": overhead,
        "plainGetSeconds": plain,
        "restoreOverGet": overhead / plain,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    spreads = {key: spread(rows, key) for key in SPREAD_KEYS if all(key in row for row in rows)}
    for phase in ("checkpointRestore", "firstStep"):
        spreads[phase] = spread([row["phaseSeconds"] for row in rows], phase)
    return {"spread": spreads, "pooled": pooled(rows)}


def verdict(figure: float) -> str:
    """Below zero the attempts' phase differences, which the figure adds, outweigh what the
    checkpoint costs: the figure is noise there, and no verdict holds."""
    if figure < 0:
        return "not judged (below 0)"
    return "met" if figure <= RESTORE_TARGET else "missed"


def summary_lines(summary: dict[str, Any], rounds: int) -> list[str]:
    spreads, whole = summary["spread"], summary["pooled"]
    lines = [f"over {rounds} rounds, median (min-max):"]
    lines += [
        f"  {key:26s} {value['median']:7.2f}  ({value['min']:.2f}-{value['max']:.2f})"
        for key, value in spreads.items()
    ]
    detection = spreads["detectionSeconds"]["median"]
    lines.append(f"detection {detection:.2f} s (target ≤ 2 s): {'met' if detection <= 2 else 'missed'}")
    if whole is None:
        # A trainer without a prefetch (--import-pairs 0): the download, then the loading.
        ratio = spreads["serialRestoreOverGet"]["median"]
        lines.append(
            f"restore / plain get_object, download + loading {ratio:.2f}x"
            f" (target ≤ {RESTORE_TARGET}x): {verdict(ratio)}"
        )
        return lines
    lines.append(
        f"restore overhead over all rounds: the imports' slowdown {whole['importsSlowdownSeconds']:+.2f} s"
        f" (median of {whole['importPairs']} pairs) + the later phases' {whole['otherPhasesSlowdownSeconds']:+.2f} s"
        f" + the wait {whole['waitSeconds']:.2f} s + loading {whole['loadingSeconds']:.2f} s"
        f" (in the pod, median of the rounds, at least 0) = {whole['restoreOverheadSeconds']:.2f} s"
        f" vs plain get_object {whole['plainGetSeconds']:.2f} s (median of all rounds); a plain Trainer"
        f" loads it in {whole['loadingApartSeconds']:.2f} s outside the pod (median of {whole['loadingPairs']} pairs)"
    )
    lines.append(
        f"restore / plain get_object {whole['restoreOverGet']:.2f}x (target ≤ {RESTORE_TARGET}x):"
        f" {verdict(whole['restoreOverGet'])}; by round {spreads['restoreApartOverGet']['median']:.2f}x"
        f" ({spreads['restoreApartOverGet']['min']:.2f}-{spreads['restoreApartOverGet']['max']:.2f})"
    )
    return lines
