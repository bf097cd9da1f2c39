"""``kubectl get sft -w`` as the demo shows it: one line per change of the SFTJob's printer columns.

The columns are read from the CRD the API server serves (``additionalPrinterColumns`` of the
served version, those kubectl shows without ``-o wide``), so the lines are what a user of a real
cluster sees. A line is printed when any column other than AGE changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from kubernetes import client, watch

from kubesft_api.times import parse_time
from testing.devcluster.kube import Kube

GROUP = "kubesft.io"
VERSION = "v1alpha1"
PLURAL = "sftjobs"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str

    def value(self, obj: dict[str, Any], now: datetime) -> str:
        found: Any = obj
        for key in self.json_path.strip(".").split("."):
            found = found.get(key) if isinstance(found, dict) else None
        if found is None or found == "":
            return "<none>" if self.type != "date" else ""
        if self.type == "date":
            created = parse_time(str(found)) or now
            return human_age((now - created).total_seconds())
        if self.type == "number" and isinstance(found, float):
            return f"{found:.4f}"
        return str(found)


def printer_columns(kube: Kube) -> list[PrinterColumn]:
    """NAME, then the CRD's default printer columns of the served version."""
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"{PLURAL}.{GROUP}")
    if crd is None:
        raise LookupError(f"the CustomResourceDefinition {PLURAL}.{GROUP} is not installed")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    columns = [PrinterColumn("NAME", "string", ".metadata.name")]
    columns += [
        PrinterColumn(c["name"].upper(), c["type"], c["jsonPath"])
        for c in version.get("additionalPrinterColumns", [])
        if not c.get("priority")
    ]
    return columns


def human_age(seconds: float) -> str:
    """kubectl's AGE: 42s, 3m5s, 12m, 5h3m, 2d4h."""
    total = max(0, int(seconds))
    minutes, secs = divmod(total, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 48:
        return f"{hours}h{mins}m" if mins and hours < 8 else f"{hours}h"
    return f"{days}d{hrs}h" if hrs else f"{days}d"


class ColumnPrinter:
    """Formats rows of ``columns`` in fixed-width cells, like kubectl's table printer."""

    WIDTHS: ClassVar[dict[str, int]] = {"NAME": 16, "PHASE": 11, "PROGRESS": 16, "LOSS": 8}

    def __init__(self, columns: list[PrinterColumn], write: Callable[[str], None]) -> None:
        self.columns = columns
        self.write = write
        self._last: tuple[str, ...] | None = None

    def _line(self, cells: list[str]) -> str:
        widths = [self.WIDTHS.get(c.name, 0) for c in self.columns]
        return "   ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    def header(self) -> None:
        self.write(self._line([c.name for c in self.columns]))

    def show(self, obj: dict[str, Any]) -> bool:
        """Print ``obj``'s row if a column other than AGE changed; returns whether it printed."""
        now = datetime.now(UTC)
        cells = [c.value(obj, now) for c in self.columns]
        key = tuple(cell for cell, c in zip(cells, self.columns, strict=True) if c.type != "date")
        if key == self._last:
            return False
        self._last = key
        self.write(self._line(cells))
        return True


def watch_until_finished(
    kube: Kube, namespace: str, name: str, write: Callable[[str], None], timeout: float
) -> dict[str, Any]:
    """Print the SFTJob's rows as it changes until its phase is terminal; returns the last object."""
    printer = ColumnPrinter(printer_columns(kube), write)
    printer.header()
    custom = client.CustomObjectsApi(kube.api)
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        # A watch that the server ends (timeout) is opened again from a fresh read.
        last = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        printer.show(last)
        if (last.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return last
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=last["metadata"]["resourceVersion"],
            timeout_seconds=max(1, min(30, int(deadline - time.monotonic()))),
        )
        for event in stream:
            if event["type"] == "DELETED":
                raise RuntimeError(f"the SFTJob {namespace}/{name} was deleted while it ran")
            last = event["object"]
            printer.show(last)
            if (last.get("status") or {}).get("phase") in TERMINAL_PHASES:
                return last
    raise TimeoutError(
        f"the SFTJob {namespace}/{name} did not finish in {timeout:.0f}s; last status: {last.get('status')}"
    )
