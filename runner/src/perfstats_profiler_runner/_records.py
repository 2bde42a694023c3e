# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading one profiled run's files while the run is still writing them.

The profiler appends one JSON line per record to ``records.jsonl`` and
flushes it at once; ``summary.json`` appears (written to a temporary name,
then renamed) when the run ends or profiling stops.  Nothing here imports
ansible-runner or Ansible.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time
from collections import deque
from typing import Any, Iterable, Optional, Tuple

RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"
# A run directory is named <UTC start>-<controller pid>-<random hex>.
RUN_DIR_RE = re.compile(r"^(\d{8}T\d{6}Z)-(\d+)-[0-9a-f]+$")

Key = Tuple[str, str, Optional[int]]  # task uuid, host, loop item number (None: the host's result)


def run_dir_started(name: str) -> tuple[float, int] | None:
    """(start time, controller pid) encoded in a run directory's name, or None."""
    match = RUN_DIR_RE.match(name)
    if match is None:
        return None
    try:
        started = calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None
    return float(started), int(match.group(2))


def find_run_dir(bases: Iterable[str], pid: int, not_before: float) -> str | None:
    """The newest run directory of controller ``pid`` started at or after ``not_before``.

    Run directory names carry the start time to the second, so ``not_before``
    is compared at that precision.
    """
    best: tuple[str, str] | None = None
    for base in bases:
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            parsed = run_dir_started(name)
            if parsed is None or parsed[1] != pid or parsed[0] < int(not_before):
                continue
            path = os.path.join(base, name)
            if os.path.isdir(path) and (best is None or name > best[0]):
                best = (name, path)
    return None if best is None else best[1]


class RunFiles:
    """Follows a run directory: host records by key, the summary when it exists."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.records_path = os.path.join(directory, RECORDS_FILE)
        self.summary_path = os.path.join(directory, SUMMARY_FILE)
        self.count = 0  # records read so far, of every scope
        self._offset = 0
        self._partial = b""
        self._by_key: dict[Key, deque[dict[str, Any]]] = {}

    @property
    def has_records(self) -> bool:
        return os.path.exists(self.records_path)

    def poll(self) -> int:
        """Read what was appended since the last call; answers the number of new records."""
        try:
            with open(self.records_path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return 0
        if not chunk:
            return 0
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next call
        new = 0
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:
                continue
            new += 1
            if isinstance(record, dict) and record.get("scope") == "host":
                key = (str(record.get("task_uuid")), str(record.get("host")), record.get("item"))
                self._by_key.setdefault(key, deque()).append(record)
        self.count += new
        return new

    def take(self, key: Key) -> dict[str, Any] | None:
        """The oldest unclaimed host record with this key (records of a key come in event order)."""
        queue = self._by_key.get(key)
        if not queue:
            return None
        record = queue.popleft()
        if not queue:
            del self._by_key[key]
        return record

    @property
    def finished(self) -> bool:
        return os.path.exists(self.summary_path)

    def summary(self) -> dict[str, Any] | None:
        try:
            with open(self.summary_path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def wait_for_record(
    run: RunFiles, key: Key, limit: float, sleep=time.sleep, clock=time.monotonic
) -> tuple[dict[str, Any] | None, str]:
    """The host record for ``key``, waiting at most ``limit`` seconds for it.

    Answers the record (or None) and why the wait ended: ``found``,
    ``passed`` (the profiler wrote a later record, so this result has none),
    ``finished`` (the run's summary exists), ``timeout`` or ``no-wait``.

    The profiler handles a result right after the event writer does, and
    handles results one at a time in order, so the first record written
    after the event was seen is either this result's own or proves that
    there is none.  The wait therefore ends as soon as the profiler has
    moved on, and ``limit`` only matters when it cannot move on at all.
    """
    run.poll()
    record = run.take(key)
    if record is not None:
        return record, "found"
    if run.finished:
        run.poll()
        record = run.take(key)
        return record, "found" if record is not None else "finished"
    if limit <= 0:
        return None, "no-wait"
    seen = run.count
    deadline = clock() + limit
    delay = 0.0005
    while True:
        sleep(delay)
        delay = min(delay * 2, 0.01)
        run.poll()
        record = run.take(key)
        if record is not None:
            return record, "found"
        if run.count > seen:
            return None, "passed"
        if run.finished:
            run.poll()
            record = run.take(key)
            return record, "found" if record is not None else "finished"
        if clock() >= deadline:
            return None, "timeout"


def wait_for_summary(run: RunFiles, limit: float, sleep=time.sleep, clock=time.monotonic) -> dict[str, Any] | None:
    """The run's summary, waiting at most ``limit`` seconds for the file to appear."""
    deadline = clock() + max(0.0, limit)
    delay = 0.001
    while True:
        if run.finished:
            return run.summary()
        if clock() >= deadline:
            return None
        sleep(delay)
        delay = min(delay * 2, 0.02)


__all__: list[str] = [
    "RECORDS_FILE",
    "SUMMARY_FILE",
    "RunFiles",
    "find_run_dir",
    "run_dir_started",
    "wait_for_record",
    "wait_for_summary",
]
