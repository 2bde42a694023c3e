# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""The HTML report of one run, optionally compared with a baseline run.

Reads a run directory (summary.json, records.jsonl, series.csv) and answers
one self-contained HTML page: inline CSS, inline SVG, one inline script, no
network access when opened.  Task, play and host names are untrusted text:
the template escapes them, and the data handed to the script is JSON whose
``<``, ``>`` and ``&`` are written as ``\\u003c``-style escapes.  A content
security policy admits only this module's own script (by its hash).

Long runs stay quick to open: the time series is drawn from min/max buckets
(spikes survive), while tables keep every exact figure.

Nothing here imports Ansible.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ansible_collections.perfstats.profiler.plugins.plugin_utils._recap import exactness, human_bytes, human_seconds

REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
RECORDS_FILE = "records.jsonl"
SERIES_FILE = "series.csv"
TEMPLATE_FILE = "_report_template.html.j2"
SCRIPT_FILE = "_report_script.js"
HERE = os.path.dirname(os.path.abspath(__file__))

DRAW_BUCKETS = 500  # min/max buckets per chart: at most 2 points each
HOVER_BUCKETS = 1000  # per-bucket maxima handed to the cursor readout
DETAIL_HOST_ROWS = 5000  # host records listed one by one (all are aggregated)

# A task regresses when a figure grows by more than REGRESSION_PCT percent
# of the baseline's and by more than the metric's floor (noise on tiny tasks).
REGRESSION_PCT = 25.0
METRICS = (
    # key, label, floor for a regression, unit kind
    ("cpu_total_s", "CPU s", 0.05, "seconds"),
    ("memory_peak_bytes", "peak memory", 16 * 1024 * 1024, "bytes"),
    ("pids_peak", "peak PIDs", 2, "count"),
    ("duration_s", "duration", 0.25, "duration"),
)

# Timeline geometry (SVG user units; the SVG scales to the page width).
WIDTH = 1000.0
LEFT = 70.0
RIGHT = 14.0
TOP = 24.0
PANEL = 104.0
GAP = 34.0
BOTTOM = 30.0


class ReportError(Exception):
    """The run directory cannot make a report."""


# ----------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------
def _float(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def parse_iso(text: Any) -> float | None:
    """Seconds since the epoch of a record's ``2026-01-02T03:04:05.678Z`` stamp."""
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        try:
            stamp = datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return None
    return stamp.replace(tzinfo=timezone.utc).timestamp()


class RunData:
    """One run, as the report sees it: summary, task and host records, series."""

    def __init__(
        self,
        directory: str,
        summary: Mapping[str, Any],
        records: Iterable[Mapping[str, Any]],
        series: Sequence[tuple[float, float | None, int | None, int | None, int]],
        notes: Iterable[str] = (),
        has_records: bool = True,
    ) -> None:
        self.directory = directory
        self.summary = dict(summary)
        self.notes = list(notes)
        self.has_records = has_records
        self.tasks: list[dict[str, Any]] = []
        self.hosts: list[dict[str, Any]] = []
        for record in records:
            if not isinstance(record, Mapping):
                continue
            if record.get("scope") == "host":
                self.hosts.append(dict(record))
            elif record.get("scope", "task") == "task":
                self.tasks.append(dict(record))
        self.series = list(series)
        self.start = parse_iso(self.summary.get("start"))
        if self.start is None:
            starts = [s for s in (parse_iso(t.get("start")) for t in self.tasks) if s is not None]
            self.start = min(starts) if starts else 0.0

    @property
    def playbook(self) -> str:
        return _text(self.summary.get("playbook"), "")

    @property
    def run_id(self) -> str:
        run_id = self.summary.get("run_id")
        if not run_id and self.tasks:
            run_id = self.tasks[0].get("run_id")
        return _text(run_id, os.path.basename(os.path.normpath(self.directory)))

    def offset(self, stamp: Any) -> float | None:
        seconds = parse_iso(stamp)
        return None if seconds is None else round(seconds - (self.start or 0.0), 3)


def read_series(path: str) -> tuple[list[tuple[float, float | None, int | None, int | None, int]], int]:
    """Rows of a series.csv (t_s, cpu_pct, memory_bytes, pids, window) and how many were unreadable."""
    rows: list[tuple[float, float | None, int | None, int | None, int]] = []
    bad = 0
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return rows, 0
        columns = {name.strip(): i for i, name in enumerate(header)}
        try:
            it, ic, im, ip, iw = (columns[c] for c in ("t_s", "cpu_pct", "memory_bytes", "pids", "window"))
        except KeyError as exc:
            raise ReportError("%s: no column %s" % (path, exc)) from None
        width = max(it, ic, im, ip, iw)
        for row in reader:
            if len(row) <= width:
                bad += 1
                continue
            t = _float(row[it])
            window = _int(row[iw])
            if t is None or window is None:
                bad += 1
                continue
            rows.append((t, _float(row[ic]), _int(row[im]), _int(row[ip]), window))
    return rows, bad


def load_run(
    directory: str,
    summary: Mapping[str, Any] | None = None,
    tasks: Iterable[Mapping[str, Any]] | None = None,
) -> RunData:
    """A run directory's data; ``summary``/``tasks`` stand in for files that were not written."""
    notes: list[str] = []
    if not os.path.isdir(directory):
        raise ReportError("%s is not a directory" % directory)
    if summary is None:
        path = os.path.join(directory, SUMMARY_FILE)
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    summary = json.load(handle)
            except ValueError as exc:
                raise ReportError("%s is not valid JSON: %s" % (path, exc)) from None
            if not isinstance(summary, Mapping):
                raise ReportError("%s does not hold a JSON object" % path)
        else:
            notes.append("no summary.json: run totals are taken from the task records")
            summary = {}
    records: list[Mapping[str, Any]] = []
    has_records = True
    path = os.path.join(directory, RECORDS_FILE)
    if os.path.exists(path):
        bad = 0
        with open(path, encoding="utf-8") as handle:
            for raw in handle:
                line = raw.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError:
                    bad += 1
        if bad:
            notes.append("%d unreadable line(s) in records.jsonl were left out" % bad)
    elif tasks is not None:
        records = [dict(t, scope="task") for t in tasks]
        has_records = False
    else:
        top = summary.get("top_tasks") if isinstance(summary, Mapping) else None
        if not summary:
            raise ReportError("%s holds neither %s nor %s" % (directory, RECORDS_FILE, SUMMARY_FILE))
        records = [dict(t, scope="task") for t in top or () if isinstance(t, Mapping)]
        records.sort(key=lambda r: _float(r.get("seq")) or 0)
        has_records = False
        notes.append("no records.jsonl: only the summary's top tasks are shown")
    series: list[tuple[float, float | None, int | None, int | None, int]] = []
    path = os.path.join(directory, SERIES_FILE)
    if os.path.exists(path):
        series, bad = read_series(path)
        if bad:
            notes.append("%d unreadable row(s) in series.csv were left out" % bad)
    return RunData(directory, summary, records, series, notes, has_records)


# ----------------------------------------------------------------------
# shaping
# ----------------------------------------------------------------------
def downsample(points: Sequence[tuple[float, float]], buckets: int) -> list[tuple[float, float]]:
    """At most two points per time bucket: its minimum and maximum, in time order.

    Spikes survive (a bucket's maximum is always drawn); the shape between
    them is the envelope a pixel column could show anyway.
    """
    if len(points) <= 2 * buckets or buckets <= 0:
        return list(points)
    t0 = points[0][0]
    span = points[-1][0] - t0
    if span <= 0:
        return [min(points, key=lambda p: p[1]), max(points, key=lambda p: p[1])]
    out: list[tuple[float, float]] = []
    current = -1
    low: tuple[float, float] | None = None
    high: tuple[float, float] | None = None
    for point in points:
        index = min(buckets - 1, int((point[0] - t0) / span * buckets))
        if index != current:
            if low is not None and high is not None:
                out.extend(sorted({low, high}))
            current = index
            low = high = point
            continue
        if low is not None and point[1] < low[1]:
            low = point
        if high is not None and point[1] > high[1]:
            high = point
    if low is not None and high is not None:
        out.extend(sorted({low, high}))
    return out


def bucket_maxima(
    series: Sequence[tuple[float, float | None, int | None, int | None, int]], buckets: int
) -> dict[str, list[Any]]:
    """Per-bucket maxima of every column (for the cursor readout)."""
    result: dict[str, list[Any]] = {"t": [], "cpu": [], "mem": [], "pids": []}
    if not series:
        return result
    t0, t1 = series[0][0], series[-1][0]
    span = t1 - t0
    current = None
    for t, cpu, mem, pids, _window in series:
        index = 0 if span <= 0 else min(buckets - 1, int((t - t0) / span * buckets))
        if index != current:
            current = index
            result["t"].append(t)
            result["cpu"].append(cpu)
            result["mem"].append(mem)
            result["pids"].append(pids)
            continue
        for key, value in (("cpu", cpu), ("mem", mem), ("pids", pids)):
            if value is not None and (result[key][-1] is None or value > result[key][-1]):
                result[key][-1] = value
    return result


def nice_ceiling(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten) not below ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power  # pragma: no cover


def nice_bytes_ceiling(value: float) -> float:
    """A ceiling for a memory axis in whole binary units (KiB, MiB, GiB)."""
    if value <= 0:
        return 1024.0
    unit = 1.0
    while value >= 1024 * unit and unit < 1024**4:
        unit *= 1024
    return nice_ceiling(value / unit) * unit


def format_offset(seconds: float) -> str:
    if seconds < 60:
        return ("%.1fs" % seconds).replace(".0s", "s")
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return "%d:%02d" % (minutes, secs)
    hours, minutes = divmod(minutes, 60)
    return "%d:%02d:%02d" % (hours, minutes, secs)


def _axis_ticks(span: float) -> list[float]:
    if span <= 0:
        return [0.0]
    step = nice_ceiling(span / 8.0)
    if span > 120:  # minutes and hours read better on whole-minute steps
        for candidate in (30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
            if span / candidate <= 8:
                step = candidate
                break
    ticks = []
    tick = 0.0
    while tick <= span * (1 + 1e-9):
        ticks.append(round(tick, 6))
        tick += step
    return ticks


def timeline(run: RunData) -> dict[str, Any] | None:
    """Geometry of the timeline SVG (server-drawn) and the cursor's data."""
    series = run.series
    if not series:
        return None
    task_spans = []
    for index, task in enumerate(run.tasks, start=1):
        start = run.offset(task.get("start"))
        end = run.offset(task.get("end"))
        if start is None:
            windows = [row[0] for row in series if row[4] == index]
            start = windows[0] if windows else None
            end = windows[-1] if windows else None
        if start is None:
            continue
        task_spans.append((index, max(0.0, start), max(start, end if end is not None else start), task))
    t_end = max(series[-1][0], max((s[2] for s in task_spans), default=0.0), 1e-3)
    plot_w = WIDTH - LEFT - RIGHT

    def x_of(t: float) -> float:
        return round(LEFT + plot_w * t / t_end, 2)

    panels = []
    specs = (
        ("cpu", "CPU %", 1, "cpu"),
        ("mem", "memory", 2, "mem"),
        ("pids", "PIDs", 3, "pids"),
    )
    for number, (key, label, column, css) in enumerate(specs):
        points = [(row[0], float(row[column])) for row in series if row[column] is not None]
        top = TOP + number * (PANEL + GAP)
        peak = max((p[1] for p in points), default=0.0)
        if key == "mem":
            ceiling = nice_bytes_ceiling(peak)
            ticks = [(ceiling * f, human_bytes(ceiling * f).replace(".0 ", " ")) for f in (0, 0.5, 1)]
            peak_label = human_bytes(peak)
        elif key == "cpu":
            ceiling = max(100.0, nice_ceiling(peak))
            ticks = [(ceiling * f, "%g%%" % (ceiling * f)) for f in (0, 0.5, 1)]
            peak_label = "%.0f%%" % peak
        else:
            ceiling = max(4.0, nice_ceiling(peak))
            ticks = [(ceiling * f, "%g" % (ceiling * f)) for f in (0, 0.5, 1)]
            peak_label = "%d" % peak

        def y_of(value: float, top: float = top, ceiling: float = ceiling) -> float:
            return round(top + PANEL - PANEL * min(value, ceiling) / ceiling, 2)

        drawn = downsample(points, DRAW_BUCKETS)
        line = " ".join("%s,%s" % (x_of(t), y_of(v)) for t, v in drawn)
        area = ""
        if drawn:
            area = "%s,%s %s %s,%s" % (x_of(drawn[0][0]), top + PANEL, line, x_of(drawn[-1][0]), top + PANEL)
        panels.append(
            {
                "key": key,
                "css": css,
                "label": label,
                "top": top,
                "bottom": top + PANEL,
                "line": line,
                "area": area,
                "points": len(drawn),
                "ticks": [{"y": y_of(v), "label": text} for v, text in ticks],
                "peak": peak_label,
            }
        )
    bottom = TOP + 3 * PANEL + 2 * GAP
    bands = []
    for n, (index, start, end, task) in enumerate(task_spans):
        x = x_of(start)
        bands.append(
            {
                "index": index,
                "x": x,
                "w": max(0.4, round(x_of(end) - x, 2)),
                "odd": n % 2 == 1,
                "name": _task_label(task),
                "play": _text(task.get("play")),
            }
        )
    return {
        "width": WIDTH,
        "height": bottom + BOTTOM,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": bottom,
        "panels": panels,
        "bands": bands,
        "lines": len(bands) <= 150,
        "ticks": [{"x": x_of(t), "label": format_offset(t)} for t in _axis_ticks(t_end)],
        "samples": len(series),
        "t_end": t_end,
        "cursor": {
            "t_end": t_end,
            "left": LEFT,
            "plot_w": plot_w,
            "tasks": [[b["index"], s[1], s[2], b["name"], b["play"]] for b, s in zip(bands, task_spans)],
            "series": bucket_maxima(series, HOVER_BUCKETS),
        },
    }


def _task_label(task: Mapping[str, Any]) -> str:
    name = _text(task.get("task_name")) or "(unnamed)"
    return "handler: " + name if task.get("task_kind") == "handler" else name


def task_rows(run: RunData) -> list[dict[str, Any]]:
    rows = []
    for index, task in enumerate(run.tasks, start=1):
        statuses = task.get("statuses")
        hosts = task.get("hosts")
        rows.append(
            {
                "index": index,
                "name": _task_label(task),
                "play": _text(task.get("play")),
                "kind": _text(task.get("task_kind"), "task"),
                "hosts": ", ".join(_text(h) for h in hosts) if isinstance(hosts, list) else _text(task.get("host")),
                "host_count": len(hosts) if isinstance(hosts, list) else (1 if task.get("host") else 0),
                "statuses": ", ".join(_text(s) for s in statuses) if isinstance(statuses, list) else "",
                "failed": isinstance(statuses, list) and ("failed" in statuses or "unreachable" in statuses),
                "start": run.offset(task.get("start")),
                "duration_s": _float(task.get("duration_s")),
                "cpu_user_s": _float(task.get("cpu_user_s")),
                "cpu_system_s": _float(task.get("cpu_system_s")),
                "cpu_total_s": _float(task.get("cpu_total_s")),
                "cpu_pct_max": _float(task.get("cpu_pct_max")),
                "memory_peak_bytes": _int(task.get("memory_peak_bytes")),
                "memory_peak_exact": bool(task.get("memory_peak_exact")),
                "memory_end_bytes": _int(task.get("memory_end_bytes")),
                "pids_peak": _int(task.get("pids_peak")),
                "pids_peak_exact": bool(task.get("pids_peak_exact")),
                "loop_items": _int(task.get("items")) or 0,
            }
        )
    return rows


def bar_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each task's four figures as a share of the largest (bar widths in percent)."""
    largest = {key: max((r[key] or 0 for r in rows), default=0) or 0 for key, _l, _f, _u in METRICS}
    bars = []
    for row in rows:
        shares = {}
        for key, _label, _floor, _unit in METRICS:
            value = row[key] or 0
            shares[key] = round(100.0 * value / largest[key], 2) if largest[key] else 0.0
        bars.append(dict(row, share=shares))
    return bars


def host_rows(run: RunData) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-host aggregates and the host records themselves (final results only)."""
    per_host: dict[str, dict[str, Any]] = {}
    details = []
    for record in run.hosts:
        host = _text(record.get("host"), "(unknown)")
        entry = per_host.setdefault(
            host,
            {"host": host, "results": 0, "loop_items": 0, "statuses": {}, "duration": 0.0, "own": 0, "cpu": 0.0, "mem": None},
        )
        if record.get("item") not in (None, False, 0):
            entry["loop_items"] += 1
            continue
        entry["results"] += 1
        status = _text(record.get("status"), "?")
        entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
        entry["duration"] += _float(record.get("host_duration_s")) or 0.0
        own = record.get("attribution") == "host"
        if own:
            entry["own"] += 1
            entry["cpu"] += _float(record.get("cpu_total_s")) or 0.0
            mem = _int(record.get("memory_peak_bytes"))
            if mem is not None and (entry["mem"] is None or mem > entry["mem"]):
                entry["mem"] = mem
        details.append(
            {
                "task": _task_label(record),
                "play": _text(record.get("play")),
                "host": host,
                "status": status,
                "loop_items": _int(record.get("items")) or 0,
                "duration": _float(record.get("host_duration_s")),
                "own": own,
                "cpu": _float(record.get("cpu_total_s")),
                "mem": _int(record.get("memory_peak_bytes")),
                "pids": _int(record.get("pids_peak")),
            }
        )
    hosts = sorted(per_host.values(), key=lambda e: e["host"])
    for entry in hosts:
        entry["status_text"] = ", ".join("%s %d" % (k, v) for k, v in sorted(entry["statuses"].items()))
    return hosts, details


# ----------------------------------------------------------------------
# comparing
# ----------------------------------------------------------------------
def task_keys(tasks: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """(play, task name, occurrence) of every task: the key that matches two runs."""
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for task in tasks:
        pair = (_text(task.get("play")), _task_label(task))
        seen[pair] = seen.get(pair, 0) + 1
        keys.append((pair[0], pair[1], seen[pair]))
    return keys


def _delta(key: str, floor: float, new: float | None, old: float | None, threshold: float) -> dict[str, Any]:
    if new is None or old is None:
        return {"new": new, "old": old, "delta": None, "pct": None, "state": "none"}
    delta = new - old
    pct = None if old == 0 else 100.0 * delta / old
    grew = delta > floor and (old == 0 or pct is None or pct > threshold)
    shrank = -delta > floor and (old == 0 or (pct is not None and -pct > threshold))
    return {
        "new": new,
        "old": old,
        "delta": delta,
        "pct": pct,
        "state": "worse" if grew else "better" if shrank else "same",
    }


def compare(current: RunData, baseline: RunData, threshold: float = REGRESSION_PCT) -> dict[str, Any]:
    """Per-task deltas of ``current`` against ``baseline`` (matched by play, name and occurrence)."""
    cur_rows = task_rows(current)
    old_rows = task_rows(baseline)
    old_by_key = dict(zip(task_keys(baseline.tasks), old_rows))
    matched: set[tuple[str, str, int]] = set()
    rows = []
    for key, row in zip(task_keys(current.tasks), cur_rows):
        old = old_by_key.get(key)
        if old is not None:
            matched.add(key)
        metrics = {
            name: _delta(name, floor, row[name], None if old is None else old[name], threshold)
            for name, _label, floor, _unit in METRICS
        }
        rows.append(
            {
                "index": row["index"],
                "name": row["name"],
                "play": row["play"],
                "occurrence": key[2],
                "matched": old is not None,
                "metrics": metrics,
                "worse": [m for m in metrics if metrics[m]["state"] == "worse"],
                "better": [m for m in metrics if metrics[m]["state"] == "better"],
            }
        )
    removed = [
        {"name": row["name"], "play": row["play"], "occurrence": key[2]} for key, row in old_by_key.items() if key not in matched
    ]
    totals = {}
    for name, _label, floor, _unit in METRICS:
        totals[name] = _delta(
            name,
            floor,
            _run_figure(current, name),
            _run_figure(baseline, name),
            threshold,
        )
    return {
        "baseline_run_id": baseline.run_id,
        "baseline_playbook": baseline.playbook,
        "baseline_start": _text(baseline.summary.get("start")),
        "same_playbook": baseline.playbook == current.playbook,
        "threshold": threshold,
        "rows": rows,
        "removed": removed,
        "added": sum(1 for r in rows if not r["matched"]),
        "regressions": sum(1 for r in rows if r["worse"]),
        "improvements": sum(1 for r in rows if r["better"] and not r["worse"]),
        "totals": totals,
    }


def config_rows(config: Any) -> list[tuple[str, str, str]]:
    """(option, value as text, origin) of the summary's configuration."""
    rows = []
    if not isinstance(config, Mapping):
        return rows
    for name, item in sorted(config.items(), key=lambda kv: str(kv[0])):
        value, origin = (item.get("value"), item.get("origin")) if isinstance(item, Mapping) else (item, None)
        if isinstance(value, list):
            text = ", ".join(_text(v) for v in value) or "(none)"
        elif value is None:
            text = "(not set)"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = _text(value)
        rows.append((_text(name), text, _text(origin, "-")))
    return rows


def _run_figure(run: RunData, key: str) -> float | None:
    value = _float(run.summary.get(key))
    if value is not None:
        return value
    figures = [_float(t.get(key)) for t in run.tasks]
    known = [f for f in figures if f is not None]
    if not known:
        return None
    return sum(known) if key in ("cpu_total_s", "duration_s") else max(known)


# ----------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------
_SCRIPT_ESCAPES = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def script_json(data: Any) -> str:
    """JSON safe inside an HTML <script> element: no ``<``, ``>`` or ``&`` left as such."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    for char, escape in _SCRIPT_ESCAPES:
        text = text.replace(char, escape)
    return text


def fmt_value(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "count":
        return "%d" % value
    if unit == "duration":
        return human_seconds(value)
    if unit == "seconds":
        return "%.2f" % value
    if unit == "pct":
        return "%.0f%%" % value
    return _text(value)


def fmt_delta(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    sign = "+" if value > 0 else "-" if value < 0 else "±"
    magnitude = abs(value)
    if unit == "duration":
        return sign + human_seconds(magnitude)
    return sign + fmt_value(magnitude, unit)


def _environment() -> Any:
    import jinja2  # jinja2 comes with ansible-core; imported late so a missing one is one warning

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["bytes"] = human_bytes
    env.filters["dur"] = human_seconds
    env.filters["fmt"] = fmt_value
    env.filters["delta"] = fmt_delta
    env.filters["offset"] = lambda v: "-" if v is None else format_offset(v)
    return env


_ENV: Any = None


def render_report(run: RunData, baseline: RunData | None = None, threshold: float = REGRESSION_PCT) -> str:
    """The report's HTML text."""
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    env = _ENV
    with open(os.path.join(HERE, SCRIPT_FILE), encoding="utf-8") as handle:
        script = handle.read()
    if "</" in script:  # pragma: no cover - guards the inline script itself
        raise ReportError("the report script must not contain '</'")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    summary = run.summary
    rows = task_rows(run)
    chart = timeline(run)
    hosts, host_details = host_rows(run)
    comparison = compare(run, baseline, threshold) if baseline is not None else None
    config = summary.get("config") if isinstance(summary.get("config"), Mapping) else {}
    exact = summary.get("exact") if isinstance(summary.get("exact"), Mapping) else {}
    data = {
        "timeline": chart["cursor"] if chart else None,
        "units": {key: unit for key, _label, _floor, unit in METRICS},
    }
    headline = {
        "cpu_total_s": _run_figure(run, "cpu_total_s"),
        "cpu_user_s": _float(summary.get("cpu_user_s")),
        "cpu_system_s": _float(summary.get("cpu_system_s")),
        "cpu_pct_max": _run_figure(run, "cpu_pct_max"),
        "memory_peak_bytes": _run_figure(run, "memory_peak_bytes"),
        "pids_peak": _run_figure(run, "pids_peak"),
        "duration_s": _float(summary.get("duration_s")),
        "tasks": len(rows),
    }
    context = {
        "title": "perfstats report: %s" % (run.playbook or run.run_id),
        "run": run,
        "summary": summary,
        "headline": headline,
        "exactness": exactness(summary) if summary else "unknown (no summary.json)",
        "exact": exact,
        "plan": summary.get("plan") if isinstance(summary.get("plan"), Mapping) else None,
        "config": config_rows(config),
        "complete": summary.get("complete", True) is not False,
        "rows": rows,
        "bars": bar_rows(rows),
        "metrics": METRICS,
        "chart": chart,
        "hosts": hosts,
        "host_details": host_details[:DETAIL_HOST_ROWS],
        "host_details_total": len(host_details),
        "comparison": comparison,
        "script": _markup(script),
        "script_hash": "sha256-" + digest,
        "data_json": _markup(script_json(data)),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    return env.get_template(TEMPLATE_FILE).render(**context)


def _markup(text: str) -> Any:
    from markupsafe import Markup  # installed with jinja2

    return Markup(text)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip(".") or "baseline"


def is_run_dir(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, name)) for name in (RECORDS_FILE, SUMMARY_FILE))


def resolve_run_dir(path: str) -> str:
    """A run directory itself, or the newest run directory inside a directory of runs."""
    path = os.path.expanduser(path)
    if not os.path.isdir(path):
        raise ReportError("%s is not a directory" % path)
    if is_run_dir(path):
        return path
    runs = sorted(
        entry for entry in os.listdir(path) if os.path.isdir(os.path.join(path, entry)) and is_run_dir(os.path.join(path, entry))
    )
    if not runs:
        raise ReportError("%s is neither a run directory (no %s or %s) nor holds one" % (path, RECORDS_FILE, SUMMARY_FILE))
    return os.path.join(path, runs[-1])


def write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (atomically)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(
    directory: str,
    dest: str | None = None,
    baseline_dir: str | None = None,
    summary: Mapping[str, Any] | None = None,
    tasks: Iterable[Mapping[str, Any]] | None = None,
    threshold: float = REGRESSION_PCT,
    write: bool = True,
) -> dict[str, Any]:
    """Render the report of a run directory into ``dest``.

    ``dest`` defaults to report.html in the run directory, or, with a
    baseline, to compare-<baseline run id>.html in it.  With ``write`` false
    the report is rendered and not written (check mode).
    """
    run = load_run(directory, summary=summary, tasks=tasks)
    baseline = load_run(baseline_dir) if baseline_dir else None
    html = render_report(run, baseline, threshold)
    if dest:
        target = dest
    elif baseline is not None:
        target = os.path.join(directory, "compare-%s.html" % _safe_name(baseline.run_id))
    else:
        target = os.path.join(directory, REPORT_FILE)
    if write:
        write_private(target, html)
    result: dict[str, Any] = {"dest": target, "tasks": len(run.tasks), "size": len(html.encode("utf-8"))}
    if baseline is not None:
        comparison = compare(run, baseline, threshold)
        result["regressions"] = [
            {"task": r["name"], "play": r["play"], "occurrence": r["occurrence"], "metrics": r["worse"]}
            for r in comparison["rows"]
            if r["worse"]
        ]
    return result
