"""What ``run.py`` prints: the figures of one run, or the rounds of the floor comparison with
their medians (which also go into the JSON)."""

from __future__ import annotations

import statistics
from typing import Any

P99_RATIO_TARGET = 1.25
RSS_TARGET_MIB = 200


def _median(rounds: list[dict[str, Any]], *path: str) -> float:
    values = []
    for figures in rounds:
        value: Any = figures
        for key in path:
            value = value[key]
        values.append(float(value))
    return round(statistics.median(values), 3)


def print_single(result: dict[str, Any]) -> None:
    latency, call = result["jobCreatedLatencySeconds"], result["createCallSeconds"]
    print(
        f"SFTJobs applied:             {result['jobs']} in {result['applySeconds']} s"
        f" ({result['createCallsRefused']} create calls refused and made again: {result['createRefusals'][:1]})"
    )
    print(f"one SFTJob create call:      p50 {call['p50']} s, p99 {call['p99']} s (API server latency)")
    print(
        f"apply -> Job created:        p50 {latency['p50']} s, p99 {latency['p99']} s, max {latency['max']} s"
    )
    from_call = result["jobCreatedFromCallSeconds"]
    print(
        f"... from the create call:    p50 {from_call['p50']} s, p99 {from_call['p99']} s (admission included)"
    )
    print(
        f"every Job created after:     {result['everyJobCreatedSeconds']} s"
        f" (the machine's CPUs {result['machineBusyUntilEveryJob']:.0%} busy until then)"
    )
    if result["noPods"]:
        print(
            f"done after:                  {result['doneSeconds']} s: {result['withStatusPhase']} with a status"
            f" phase, Running condition reasons {result['waitingReasons']}"
        )
    else:
        print(f"all terminal after:          {result['doneSeconds']} s  {result['phases']}")
    print(
        f"operator RSS:                {result['rssBeforeApplyMiB']} MiB before the first apply,"
        f" peak {result['peakRssMiB']} MiB, {result['rssAtEndMiB']} MiB at the end"
        f" (+{result['rssGrowthPer1000JobsMiB']} MiB per 1,000 jobs; target peak < {RSS_TARGET_MIB} MiB)"
    )
    p99 = result["reconcileP99Seconds"] or {}
    print(
        f"reconciles:                  {result['reconciles']}, mean {result['reconcileSecondsMean']} s,"
        f" p99 {p99.get('interpolated')} s interpolated (bucket le {p99.get('bucketUpperBound')} s;"
        " inf: beyond the last bound)"
    )
    per_job = result["cpuMillisecondsPerJob"]
    print(
        f"CPU per job over the run:    operator {per_job['operator']} ms,"
        f" kube-apiserver {per_job['kube-apiserver']} ms, etcd {per_job['etcd']} ms"
    )
    memory = ", ".join(
        f"{name} {m['peak']:.0f} peak / {m['atEnd']:.0f} at end"
        for name, m in result["controlPlaneMemoryMiB"].items()
    )
    print(f"control plane memory (MiB):  {memory}")
    print(
        f"machine:                     {result['machineCpus']} CPUs, load average {result['machineLoadAverage']}"
    )
    print("CPU seconds, first apply -> every Job created | whole run:")
    for name, seconds in result["cpuSecondsUntilEveryJob"].items():
        print(f"    {name:28s} {seconds:7.1f} | {result['cpuSecondsOverTheRound'][name]:7.1f}")
    print(f"API requests by the operator: {result['apiRequests']} ({result['apiRequestsPerJob']} per job)")
    for call_name, count in result["apiRequestsByCall"].items():
        print(f"    {count:6d}  {call_name}")
    lost = result["lost"]
    print(f"lost:                        {len(lost)} {lost[:5]}")
    if result["noPods"]:
        waiting = result["notShowingUnschedulable"]
        print(f"not showing Unschedulable:   {len(waiting)} {waiting[:5]}")
    wrong = result["notExactlyOneJob"]
    print(f"not exactly one Job:         {len(wrong)} {wrong[:5]}")


def print_compare(result: dict[str, Any]) -> dict[str, Any]:
    """Print the rounds and their medians; returns the medians."""
    kubesft, floor = result["rounds"]["kubesft"], result["rounds"]["floor"]
    pace = f"at {result['rate']:g} per second" if result.get("rate") else "at once"
    print(f"{result['jobs']} SFTJobs applied {pace} per round; apply -> Job created (s), CPU ms per job:")
    print(
        "round  controller  p50     p99     from call: p50  p99     create call p50  every Job"
        "  controller  kube-apiserver  etcd   requests/job"
    )
    for number, (ours, theirs) in enumerate(zip(kubesft, floor, strict=True), start=1):
        for arm, figures, controller in (("kubesft", ours, "operator"), ("floor", theirs, "floor")):
            latency, per_job = figures["jobCreatedLatencySeconds"], figures["cpuMillisecondsPerJob"]
            from_call = figures["jobCreatedFromCallSeconds"]
            print(
                f"{number:5d}  {arm:10s}  {latency['p50']:6.3f}  {latency['p99']:6.3f}"
                f"  {from_call['p50']:14.3f}  {from_call['p99']:6.3f}"
                f"  {figures['createCallSeconds']['p50']:15.3f}"
                f"  {figures['everyJobCreatedSeconds']:9.2f}  {per_job[controller]:10.1f}"
                f"  {per_job['kube-apiserver']:14.1f}  {per_job['etcd']:5.1f}  {figures['apiRequestsPerJob']:12.1f}"
            )
    summary = {
        "kubesftP50": _median(kubesft, "jobCreatedLatencySeconds", "p50"),
        "kubesftP99": _median(kubesft, "jobCreatedLatencySeconds", "p99"),
        "floorP50": _median(floor, "jobCreatedLatencySeconds", "p50"),
        "floorP99": _median(floor, "jobCreatedLatencySeconds", "p99"),
        "kubesftP99FromCall": _median(kubesft, "jobCreatedFromCallSeconds", "p99"),
        "floorP99FromCall": _median(floor, "jobCreatedFromCallSeconds", "p99"),
        "operatorCpuMsPerJob": _median(kubesft, "cpuMillisecondsPerJob", "operator"),
        "apiserverCpuMsPerJobWithOperator": _median(kubesft, "cpuMillisecondsPerJob", "kube-apiserver"),
        "floorCpuMsPerJob": _median(floor, "cpuMillisecondsPerJob", "floor"),
        "apiserverCpuMsPerJobWithFloor": _median(floor, "cpuMillisecondsPerJob", "kube-apiserver"),
        "operatorPeakRssMiB": _median(kubesft, "peakRssMiB"),
        "floorPeakRssMiB": _median(floor, "peakRssMiB"),
        "lost": sum(len(f["lost"]) + len(f["notExactlyOneJob"]) for f in kubesft + floor),
    }
    summary["p99Ratio"] = round(summary["kubesftP99"] / summary["floorP99"], 2)
    summary["p99RatioFromCall"] = round(summary["kubesftP99FromCall"] / summary["floorP99FromCall"], 2)
    print(
        f"median over rounds: kubesft p50 {summary['kubesftP50']} s, p99 {summary['kubesftP99']} s;"
        f" floor p50 {summary['floorP50']} s, p99 {summary['floorP99']} s"
    )
    print(f"ratio kubesft p99 / floor p99: {summary['p99Ratio']} (target <= {P99_RATIO_TARGET})")
    print(
        f"the same from the create call being made (admission included): kubesft p99"
        f" {summary['kubesftP99FromCall']} s, floor p99 {summary['floorP99FromCall']} s,"
        f" ratio {summary['p99RatioFromCall']}"
    )
    print(
        f"CPU per job over a round, median: operator {summary['operatorCpuMsPerJob']} ms,"
        f" kube-apiserver {summary['apiserverCpuMsPerJobWithOperator']} ms beside it"
        f" (target: operator <= API server); floor {summary['floorCpuMsPerJob']} ms,"
        f" kube-apiserver {summary['apiserverCpuMsPerJobWithFloor']} ms beside it"
    )
    print(
        f"peak RSS, median: operator {summary['operatorPeakRssMiB']} MiB, floor {summary['floorPeakRssMiB']} MiB;"
        f" lost or not exactly one Job, all rounds: {summary['lost']}"
    )
    return summary
