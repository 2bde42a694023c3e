# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ansible-runner plugin: perfstats.profiler figures in job events.

ansible-runner loads this module through the ``ansible_runner.plugins`` entry
point and calls, in the process that runs ``ansible-playbook``:

* ``status_handler(config, status_data)`` on every status change, before the
  caller's own status handler;
* ``event_handler(config, event_data)`` for every event, after the caller's
  event handler and before the event is written to
  ``artifacts/<ident>/job_events/``.

Result events (``runner_on_*``, ``runner_item_on_*``) get the profiler's
``scope: host`` record as ``event_data.profiling_data``; ``playbook_on_stats``
gets the run's summary.  Because ansible-core hands every result to the event
writer before it reaches the profiler, the record may not exist yet when the
event arrives: the plugin then waits for it, and the wait ends as soon as the
record exists or the profiler has moved past the result (see docs/runner.md
of the collection for the order of things and the worst case).

A caller's ``event_handler`` runs before plugins, so it sees ``profiling_data``
only when wrapped with :func:`with_profiling_data`.  On an ``ansible-runner
worker`` events are streamed before plugins see them: their figures go with
the final status (``profiling_events``) and in the worker's artifacts
(``perfstats/profiling_events.json``, streamed back with them), and
:func:`apply_profiling_events` (or the ``perfstats-runner-apply`` command)
writes them into the processing side's job events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Mapping

from perfstats_profiler_runner._records import (
    RunFiles,
    find_run_dir,
    wait_for_record,
    wait_for_summary,
)

__version__ = "0.1.0"

RESULT_EVENTS = frozenset(("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"))
ITEM_EVENTS = frozenset(("runner_item_on_ok", "runner_item_on_failed", "runner_item_on_skipped"))
STATS_EVENT = "playbook_on_stats"
FINAL_STATUSES = frozenset(("successful", "failed", "canceled", "timeout", "error"))
FIELD = "profiling_data"
EVENTS_FIELD = "profiling_events"  # on a final status: {event uuid: profiling_data} of streamed events

WAIT_ENV = "PERFSTATS_RUNNER_WAIT"
DEFAULT_WAIT = 2.0
WAIT_BOUNDS = (0.0, 30.0)
RUN_SUBDIR = "perfstats"
EVENTS_FILE = "profiling_events.json"  # in <artifact dir>/perfstats/ of a worker: what profiling_events carries
DEFAULT_OUTPUT_DIR = os.path.join("~", ".ansible", "perfstats")

log = logging.getLogger("perfstats_profiler_runner")


def _wait_limit(env: Mapping[str, Any]) -> float:
    raw = env.get(WAIT_ENV, os.environ.get(WAIT_ENV))
    if raw is None or str(raw).strip() == "":
        return DEFAULT_WAIT
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = float("nan")
    if not WAIT_BOUNDS[0] <= value <= WAIT_BOUNDS[1]:  # also false for NaN
        log.warning("%s=%r is not a number of seconds between %g and %g: using %g", WAIT_ENV, raw, *WAIT_BOUNDS, DEFAULT_WAIT)
        return DEFAULT_WAIT
    return value


def _expand(path: str, env: Mapping[str, Any], cwd: str | None) -> str:
    home = env.get("HOME")
    if path.startswith("~") and home:
        path = str(home) + path[1:]
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and cwd:
        path = os.path.join(cwd, path)
    return os.path.abspath(path)


def output_bases(env: Mapping[str, Any], artifact_dir: str | None, cwd: str | None) -> list[str]:
    """Where the profiler of a job may have put its run directory, most specific first.

    ``PERFSTATS_OUTPUT_DIR`` from the job's environment when set; otherwise
    ``perfstats`` beneath the job's artifact directory (the profiler's own
    choice under ansible-runner), then the profiler's default.
    """
    bases: list[str] = []
    configured = env.get("PERFSTATS_OUTPUT_DIR")
    if configured:
        bases.append(_expand(str(configured), env, cwd))
    else:
        for root in (artifact_dir, env.get("AWX_ISOLATED_DATA_DIR")):
            if root:
                bases.append(os.path.join(os.path.abspath(str(root)), RUN_SUBDIR))
        bases.append(_expand(DEFAULT_OUTPUT_DIR, env, cwd))
    unique: list[str] = []
    for base in bases:
        if base not in unique:
            unique.append(base)
    return unique


class Job:
    """What the plugin knows of one runner job in this process."""

    def __init__(self, artifact_dir: str, ident: str, env: Mapping[str, Any], cwd: str | None) -> None:
        self.artifact_dir = artifact_dir
        self.ident = ident
        self.started = time.time()
        self.bases = output_bases(env, artifact_dir, cwd)
        self.limit = _wait_limit(env)
        self.run: RunFiles | None = None
        self.resolved = False
        self.items: dict[tuple, int] = {}
        self.done: dict[str, bool] = {}  # event uuids already handled (wrapper and plugin both see an event)
        self.annotated: list[tuple[str, str, dict[str, Any]]] = []  # (counter, uuid, profiling_data)
        self.timeouts = 0
        self.waited = 0.0
        self.lock = threading.Lock()

    def resolve(self, pid: Any) -> RunFiles | None:
        """The profiler's run of this job; looked up once, at the first result or stats event.

        The profiler makes its run directory when the playbook starts, before
        any result exists, so a run that is not there by then is not profiled.
        """
        if not self.resolved:
            self.resolved = True
            try:
                number = int(pid)
            except (TypeError, ValueError):
                return None
            directory = find_run_dir(self.bases, number, self.started - 1.0)
            if directory is not None:
                self.run = RunFiles(directory)
                log.debug("job %s: profiler run %s", self.ident, directory)
        return self.run

    def annotate(self, event_data: dict[str, Any]) -> None:
        event = event_data.get("event")
        if event not in RESULT_EVENTS and event not in ITEM_EVENTS and event != STATS_EVENT:
            return
        if FIELD in event_data:
            return
        uuid = str(event_data.get("uuid"))
        with self.lock:
            if self.done.pop(uuid, False):
                return
            data = event_data.get("event_data")
            if not isinstance(data, dict):
                return
            run = self.resolve(event_data.get("pid"))
            if run is None:
                return
            began = time.monotonic()
            try:
                if event == STATS_EVENT:
                    value = wait_for_summary(run, self.limit * 2 if self.timeouts == 0 else 0.0)
                else:
                    value = self._host_record(run, event, data)
            finally:
                self.waited += time.monotonic() - began
            self.done[uuid] = True
            if len(self.done) > 64:
                self.done.pop(next(iter(self.done)))
        if value is not None:
            data[FIELD] = value
            self.annotated.append((str(event_data.get("counter")), uuid, value))

    def unwritten(self) -> dict[str, dict[str, Any]]:
        """Figures of annotated events that ansible-runner did not write to this job's job_events.

        ansible-runner writes an event's file right after its plugins return,
        unless the caller's event handler declined it.  A worker of
        ``ansible-runner worker`` declines every event: it streams them to the
        processing side instead, before any plugin has seen them.  Asked at the
        final status, after the last event.
        """
        events_dir = os.path.join(self.artifact_dir, "job_events")
        return {
            uuid: value
            for counter, uuid, value in self.annotated
            if not os.path.exists(os.path.join(events_dir, "%s-%s.json" % (counter, uuid)))
        }

    def _host_record(self, run: RunFiles, event: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        if not run.has_records:
            return None
        task = str(data.get("task_uuid"))
        host = str(data.get("host"))
        if event in ITEM_EVENTS:
            number = self.items.get((task, host), 0) + 1
            self.items[(task, host)] = number
            key = (task, host, number)
        else:
            self.items.pop((task, host), None)  # the host's result closes its loop
            key = (task, host, None)
        limit = self.limit if self.timeouts == 0 else 0.0
        record, why = wait_for_record(run, key, limit)
        if why == "timeout":
            self.timeouts += 1
            log.warning(
                "job %s: no profiler record for %s/%s after %gs; not waiting again in this job",
                self.ident,
                data.get("task"),
                host,
                limit,
            )
        return record


_jobs: dict[str, Job] = {}
_idents: dict[str, str] = {}
_registry_lock = threading.Lock()


def _job_for(config: Any) -> Job | None:
    artifact_dir = getattr(config, "artifact_dir", None)
    if not artifact_dir:
        return None  # a stream processor: the profiler's files are on the worker
    with _registry_lock:
        return _jobs.get(os.path.abspath(str(artifact_dir)))


def status_handler(config: Any, status_data: dict[str, Any]) -> None:
    """ansible-runner calls this on every status change of a job."""
    try:
        status = status_data.get("status")
        artifact_dir = getattr(config, "artifact_dir", None)
        if not artifact_dir:
            return
        key = os.path.abspath(str(artifact_dir))
        if status == "starting":
            env = status_data.get("env") or getattr(config, "env", None) or {}
            cwd = status_data.get("cwd") or getattr(config, "cwd", None)
            ident = str(status_data.get("runner_ident") or getattr(config, "ident", "") or "")
            job = Job(key, ident, env, cwd)
            with _registry_lock:
                _jobs[key] = job
                _idents[ident] = key
        elif status in FINAL_STATUSES:
            with _registry_lock:
                job = _jobs.pop(key, None)
                if job is not None and _idents.get(job.ident) == key:
                    del _idents[job.ident]
            if job is not None:
                log.debug("job %s: waited %.3fs in all for profiler files, %d timeout(s)", job.ident, job.waited, job.timeouts)
            if job is not None and job.run is not None:
                summary = job.run.summary()
                if summary is not None:
                    status_data[FIELD] = summary
                unwritten = job.unwritten()
                if unwritten:
                    status_data[EVENTS_FIELD] = unwritten
                    # ansible-runner streams the artifact directory after the final status: the
                    # file reaches the processing side of a worker even through the CLI.
                    _write_events_file(job.artifact_dir, unwritten)
    except Exception:  # noqa: BLE001 - a plugin must never break a job
        log.exception("perfstats profiler plugin: status %r", status_data.get("status"))


def _write_atomically(path: str, value: Any) -> None:
    aside = path + ".perfstats-tmp"
    try:
        with open(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            json.dump(value, handle)
        os.replace(aside, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(aside)
        raise


def _write_events_file(artifact_dir: str, unwritten: Mapping[str, Any]) -> None:
    directory = os.path.join(artifact_dir, RUN_SUBDIR)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        _write_atomically(os.path.join(directory, EVENTS_FILE), unwritten)
    except OSError as exc:
        log.warning("perfstats profiler plugin: could not write %s in %s: %s", EVENTS_FILE, directory, exc)


def event_handler(config: Any, event_data: dict[str, Any]) -> None:
    """ansible-runner calls this for every event, before writing it to job_events."""
    try:
        job = _job_for(config)
        if job is not None:
            job.annotate(event_data)
    except Exception:  # noqa: BLE001 - a plugin must never break a job
        log.exception("perfstats profiler plugin: event %r", event_data.get("event"))


def with_profiling_data(handler: Callable[[dict[str, Any]], Any] | None = None) -> Callable[[dict[str, Any]], Any]:
    """Wrap a caller's ``event_handler`` so that it sees ``profiling_data`` too.

    ansible-runner calls the caller's event handler before its plugins; the
    wrapper adds the data first, then calls ``handler`` (when given) and
    answers what it answers (True when there is no handler).
    """

    def wrapped(event_data: dict[str, Any]) -> Any:
        try:
            with _registry_lock:
                key = _idents.get(str(event_data.get("runner_ident")))
                job = _jobs.get(key) if key is not None else None
            if job is not None:
                job.annotate(event_data)
        except Exception:  # noqa: BLE001
            log.exception("perfstats profiler plugin: event %r", event_data.get("event"))
        return True if handler is None else handler(event_data)

    return wrapped


def apply_profiling_events(artifact_dir: str | os.PathLike[str], status_data: Mapping[str, Any] | None = None) -> int:
    """Write streamed events' figures into the job events of a processing side.

    On an ``ansible-runner worker`` the plugin puts every event's
    ``profiling_data`` (by event uuid) in the job's final status, as
    ``profiling_events``, and in ``perfstats/profiling_events.json`` of the
    worker's artifact directory, which ansible-runner streams back to the
    processing side.  The figures are taken from ``status_data`` when given,
    else from that file in ``artifact_dir``.  Each
    ``<artifact_dir>/job_events/<counter>-<uuid>.json`` of those events gets
    its ``event_data.profiling_data``, replaced whole (written aside, then
    renamed).  Returns how many files were updated.
    """
    base = os.fspath(artifact_dir)
    found = status_data.get(EVENTS_FIELD) if isinstance(status_data, Mapping) else None
    if status_data is None:
        found = _read_events_file(base)
    if not isinstance(found, Mapping) or not found:
        return 0
    events_dir = os.path.join(base, "job_events")
    try:
        names = os.listdir(events_dir)
    except OSError:
        return 0
    updated = 0
    for name in names:
        stem, dot, ext = name.rpartition(".")
        uuid = stem.partition("-")[2]
        if not dot or ext != "json" or uuid not in found:
            continue
        path = os.path.join(events_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                event = json.load(handle)
            event.setdefault("event_data", {})[FIELD] = found[uuid]
            _write_atomically(path, event)
            updated += 1
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("perfstats profiler plugin: could not add profiling_data to %s: %s", path, exc)
    return updated


def _read_events_file(artifact_dir: str) -> Any:
    path = os.path.join(artifact_dir, RUN_SUBDIR, EVENTS_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("perfstats profiler plugin: could not read %s: %s", path, exc)
        return None


__all__ = [
    "event_handler",
    "status_handler",
    "with_profiling_data",
    "apply_profiling_events",
    "output_bases",
    "FIELD",
    "EVENTS_FIELD",
    "EVENTS_FILE",
    "WAIT_ENV",
]
