# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""Text of the end-of-run recap, and the ranking of tasks, from records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SORT_KEYS = {
    "cpu": "cpu_total_s",
    "memory": "memory_peak_bytes",
    "pids": "pids_peak",
    "duration": "duration_s",
}


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024.0 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return "%.1f TiB" % size  # pragma: no cover


def human_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return "%.2fs" % value
    minutes, seconds = divmod(value, 60)
    if minutes < 60:
        return "%dm%04.1fs" % (minutes, seconds)
    hours, minutes = divmod(minutes, 60)
    return "%dh%02dm%02ds" % (hours, minutes, seconds)


def top_tasks(tasks: Sequence[Mapping[str, Any]], sort: str = "cpu", count: int = 10) -> list[Mapping[str, Any]]:
    key = SORT_KEYS.get(sort, "cpu_total_s")
    ranked = sorted(tasks, key=lambda r: (r.get(key) or 0, -r.get("seq", 0)), reverse=True)
    return ranked[: max(0, count)]


def exactness(summary: Mapping[str, Any]) -> str:
    exact = summary.get("exact") or {}
    kernel = [name for name, key in (("memory", "memory_peak"), ("PID", "pids_peak")) if exact.get(key)]
    sampled = [name for name, key in (("memory", "memory_peak"), ("PID", "pids_peak")) if not exact.get(key)]
    parts = ["CPU seconds %s" % ("from kernel counters" if exact.get("cpu") else "from process times")]
    if kernel:
        parts.append("%s peaks kernel-exact" % " and ".join(kernel))
    if sampled:
        parts.append("%s peaks sampled every %gs" % (" and ".join(sampled), summary.get("interval_s", 0)))
    return "; ".join(parts)


def recap_lines(summary: Mapping[str, Any], top: Sequence[Mapping[str, Any]], sort: str) -> list[str]:
    """The recap's lines (without the banner)."""
    lines = [
        "backend: %s (%s)%s"
        % (
            summary.get("backend"),
            exactness(summary),
            "" if summary.get("complete", True) else "; run incomplete",
        ),
        "run: %s CPU-s (user %s, system %s) in %s, max CPU %s%%, max memory %s, max PIDs %s, %d tasks"
        % (
            _num(summary.get("cpu_total_s")),
            _num(summary.get("cpu_user_s")),
            _num(summary.get("cpu_system_s")),
            human_seconds(summary.get("duration_s")),
            _pct(summary.get("cpu_pct_max")),
            human_bytes(summary.get("memory_peak_bytes")),
            summary.get("pids_peak", "-"),
            summary.get("tasks", 0),
        ),
    ]
    if summary.get("output_dir"):
        lines.append("records: %s" % summary["output_dir"])
    if not top:
        return lines
    lines.append("top %d tasks by %s:" % (len(top), sort))
    rows = [("task", "CPU s", "max CPU", "peak mem", "PIDs", "duration")]
    for record in top:
        mem = human_bytes(record.get("memory_peak_bytes"))
        pids = "-" if record.get("pids_peak") is None else str(record.get("pids_peak"))
        rows.append(
            (
                _task_label(record),
                _num(record.get("cpu_total_s")),
                _pct(record.get("cpu_pct_max")) + "%",
                mem + ("" if record.get("memory_peak_exact") else "~"),
                pids + ("" if record.get("pids_peak_exact") else "~"),
                human_seconds(record.get("duration_s")),
            )
        )
    width = min(48, max(len(r[0]) for r in rows))
    for row in rows:
        name = row[0] if len(row[0]) <= width else row[0][: width - 1] + "…"
        lines.append("  %-*s %9s %8s %12s %6s %10s" % (width, name, *row[1:]))
    if any(not (r.get("memory_peak_exact") and r.get("pids_peak_exact")) for r in top):
        lines.append("  (~ sampled, not kernel-exact)")
    return lines


def _task_label(record: Mapping[str, Any]) -> str:
    name = record.get("task_name") or "(unnamed)"
    if record.get("task_kind") == "handler":
        name = "handler: " + name
    return name


def _num(value: float | None) -> str:
    return "-" if value is None else "%.2f" % value


def _pct(value: float | None) -> str:
    return "-" if value is None else "%.0f" % value
