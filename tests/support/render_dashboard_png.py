"""Renders a kubesft dashboard's panels to a PNG from a Prometheus' data.

The queries are the dashboard's own (charts/kubesft/dashboards/<name>.json) with Grafana's
variables resolved, so the picture shows what the dashboard shows. ``make dashboard-png``
regenerates docs/training-dashboard.png and docs/operator-dashboard.png from a real training
run; by hand::

    python -m tests.support.render_dashboard_png --prometheus http://127.0.0.1:9090 --dashboard training \\
        --var namespace=ml --var sftjob=smollm2-chat --start 1760000000 --end 1760000600 --out out.png
    python -m tests.support.render_dashboard_png --prometheus http://127.0.0.1:9090 --dashboard operator \\
        --var job=kubesft-metrics --start 1760000000 --end 1760000600 --out operator.png
"""

from __future__ import annotations

import argparse
import datetime
import math
import pathlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from testing.devcluster.chart import builtin_variables, dashboards, panels, substitute
from testing.devcluster.prometheus import PrometheusClient, PrometheusError

RangeQuery = Callable[[str, float, float, float], list[dict[str, Any]]]

_UNIT_SCALE = {"bytes": (1 / 2**20, "MiB"), "percent": (1.0, "%"), "s": (1.0, "s")}


def legend(template: str, labels: Mapping[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def _points(series: Mapping[str, Any], start: float) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for ts, raw in series["values"]:
        value = float(raw)
        if math.isfinite(value):
            xs.append((float(ts) - start) / 60)
            ys.append(value)
    return xs, ys


def render_training_png(
    query_range: RangeQuery,
    *,
    namespace: str,
    sftjob: str,
    start: float,
    end: float,
    out: pathlib.Path,
    rate_interval: str = "1m",
) -> dict[str, int]:
    """Draw every training panel for one SFTJob; return, per panel title, how many finite points it got."""
    return render_dashboard_png(
        query_range,
        "training",
        {"namespace": namespace, "sftjob": sftjob},
        start=start,
        end=end,
        out=out,
        rate_interval=rate_interval,
        subject=f"{namespace}/{sftjob}",
    )


def render_dashboard_png(
    query_range: RangeQuery,
    dashboard: str,
    variables: Mapping[str, str],
    *,
    start: float,
    end: float,
    out: pathlib.Path,
    rate_interval: str = "1m",
    subject: str = "",
) -> dict[str, int]:
    """Draw every panel of ``dashboard`` (a file stem under charts/kubesft/dashboards) with its
    template ``variables`` resolved; return, per panel title, how many finite points it got."""
    board = dashboards()[dashboard]
    step = max(1.0, (end - start) / 300)
    variables = {
        **variables,
        **builtin_variables(rate_interval, f"{max(1, math.ceil(end - start))}s"),
    }
    drawn = [p for p in panels(board) if p["type"] in ("timeseries", "stat", "table")]
    columns = 3
    rows = math.ceil(len(drawn) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False)
    points: dict[str, int] = {}
    for ax, panel in zip(axes.flat, drawn, strict=False):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        scale, suffix = _UNIT_SCALE.get(unit, (1.0, ""))
        ax.set_title(panel["title"] + (f" ({suffix})" if suffix else ""), fontsize=11, loc="left")
        count = 0
        texts: list[str] = []
        for target in panel["targets"]:
            expr = substitute(target["expr"], variables)
            for series in query_range(expr, start, end, step):
                xs, ys = _points(series, start)
                count += len(ys)
                name = legend(target.get("legendFormat", ""), series["metric"])
                if panel["type"] == "timeseries" and ys:
                    ax.plot(xs, [y * scale for y in ys], label=name or None, linewidth=1.4)
                elif panel["type"] == "stat" and ys:
                    texts.append(f"{ys[-1] * scale:.4g}{suffix if suffix != 's' else ' s'}")
                elif panel["type"] == "table":
                    labels = {k: v for k, v in series["metric"].items() if k not in ("sftjob", "__name__")}
                    texts.append("\n".join(f"{k}: {v}" for k, v in sorted(labels.items())))
        points[panel["title"]] = count
        if panel["type"] == "timeseries":
            # One time axis for every panel, as on a Grafana dashboard.
            ax.set_xlim(0, (end - start) / 60)
            ax.set_xlabel("minutes", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="best")
            if count == 0:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        else:
            ax.axis("off")
            size = 26 if panel["type"] == "stat" else 10
            ax.text(0.5, 0.45, "\n".join(texts) or "no data", ha="center", va="center", fontsize=size)
    for ax in list(axes.flat)[len(drawn) :]:
        ax.axis("off")
    stamp = datetime.datetime.fromtimestamp(start, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    figure.suptitle(f"{board['title']}: {subject + ', ' if subject else ''}from {stamp}", fontsize=14)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prometheus", required=True, help="base URL of the Prometheus to query")
    parser.add_argument("--dashboard", choices=sorted(dashboards()), default="training")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a dashboard variable, e.g. namespace=ml, sftjob=smollm2-chat or job=kubesft-metrics",
    )
    parser.add_argument("--start", type=float, required=True, help="Unix time")
    parser.add_argument("--end", type=float, required=True, help="Unix time")
    parser.add_argument("--rate-interval", default="1m", help="value of $__rate_interval")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    variables = dict(item.partition("=")[::2] for item in args.var)
    client = PrometheusClient(args.prometheus)
    try:
        points = render_dashboard_png(
            client.query_range,
            args.dashboard,
            variables,
            start=args.start,
            end=args.end,
            out=args.out,
            rate_interval=args.rate_interval,
            subject=", ".join(f"{k}={v}" for k, v in variables.items()),
        )
    except KeyError as err:
        parser.exit(
            2, f"render_dashboard_png: the {args.dashboard} dashboard needs --var {err.args[0]}=...\n"
        )
    except PrometheusError as err:
        parser.exit(1, f"render_dashboard_png: {err}\n")
    empty = sorted(title for title, count in points.items() if count == 0)
    print(f"wrote {args.out}" + (f"; panels without data: {', '.join(empty)}" if empty else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
