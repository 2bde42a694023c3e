# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""The files of one run: records (JSON lines), CSV, time series, summary.

Every file is created readable by its owner only, inside a run directory
that only its owner may enter.  Records are flushed as they are written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

OUTPUT_KINDS = ("records", "summary", "series", "csv", "html")
DEFAULT_OUTPUTS = ("records", "summary", "series")

RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"
SERIES_FILE = "series.csv"
TASKS_CSV_FILE = "tasks.csv"
SERIES_COLUMNS = ("t_s", "cpu_pct", "memory_bytes", "pids", "window")
CSV_COLUMNS = (
    "seq",
    "task_uuid",
    "task_name",
    "task_kind",
    "play",
    "host",
    "start",
    "end",
    "duration_s",
    "cpu_user_s",
    "cpu_system_s",
    "cpu_total_s",
    "cpu_pct_max",
    "memory_peak_bytes",
    "memory_peak_exact",
    "memory_end_bytes",
    "pids_peak",
    "pids_peak_exact",
    "items",
    "backend",
)


def _open_private(path: str, mode: str = "w") -> io.TextIOWrapper:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.fchmod(fd, 0o600)
    return open(fd, mode, encoding="utf-8", newline="")


def make_private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


class RunOutputs:
    """Writes one run's files beneath ``<base>/<run_id>/``."""

    def __init__(self, base: str, run_id: str, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        make_private_dir(base)
        self.directory = os.path.join(base, run_id)
        make_private_dir(self.directory)
        self._records = _open_private(os.path.join(self.directory, RECORDS_FILE)) if "records" in self.kinds else None
        self._csv_handle = None
        self._csv = None
        if "csv" in self.kinds:
            self._csv_handle = _open_private(os.path.join(self.directory, TASKS_CSV_FILE))
            self._csv = csv.DictWriter(self._csv_handle, CSV_COLUMNS, extrasaction="ignore")
            self._csv.writeheader()
            self._csv_handle.flush()
        self._series = None
        self._series_flushed = time.monotonic()
        if "series" in self.kinds:
            self._series = _open_private(os.path.join(self.directory, SERIES_FILE))
            self._series.write(",".join(SERIES_COLUMNS) + "\n")
            self._series.flush()

    def record(self, record: Mapping[str, Any]) -> None:
        if self._records is not None:
            self._records.write(json.dumps(dict(record), sort_keys=True) + "\n")
            self._records.flush()
        if self._csv is not None and self._csv_handle is not None and record.get("scope") == "task":
            self._csv.writerow(dict(record))
            self._csv_handle.flush()

    def sample(self, row: tuple) -> None:
        if self._series is None:
            return
        self._series.write(",".join("" if v is None else str(v) for v in row) + "\n")
        now = time.monotonic()
        if now - self._series_flushed >= 1.0:
            self._series.flush()
            self._series_flushed = now

    def summary(self, summary: Mapping[str, Any]) -> str | None:
        if "summary" not in self.kinds:
            return None
        path = os.path.join(self.directory, SUMMARY_FILE)
        tmp = path + ".tmp"
        with _open_private(tmp) as handle:
            json.dump(dict(summary), handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        for handle in (self._records, self._csv_handle, self._series):
            if handle is not None and not handle.closed:
                try:
                    handle.close()
                except OSError:
                    pass


def read_records(directory: str) -> list[dict[str, Any]]:
    """The records of a run directory, in the order they were written."""
    records = []
    with open(os.path.join(directory, RECORDS_FILE), encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if line:
                records.append(json.loads(line))
    return records
