# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""One profiled run: its own groups, task windows, a sampler, records.

The session knows kernel meters and nothing of Ansible.  It:

* creates the run's group beneath the process's own group (or a base group)
  in every hierarchy the plan uses, and moves the controller into it, so
  every process it forks is counted and simultaneous runs never mix;
* scopes memory and PID peaks to a task window with a fresh child group per
  window (the controller's calling thread moves into it when the window
  opens, so the workers it forks and their modules are born there; on v1
  a thread moving itself avoids the kernel's global migration lock and its
  wait of milliseconds); CPU seconds of a window are
  the exact delta of the run group's counter between window boundaries;
* samples the run group on one background thread for the time series and
  for whatever the kernel keeps no peak of;
* emits immutable records as windows close and host results arrive;
* removes every group it made, on every exit path.
"""

from __future__ import annotations

import atexit
import errno
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from typing import Mapping as _Mapping

from ansible_collections.perfstats.profiler.plugins.module_utils._cgroups import (
    CPU,
    GROUP_PREFIX,
    MEMORY,
    METRICS,
    PIDS,
    CpuTimes,
    GroupDir,
    Layout,
    Plan,
    choose_plan,
    detect_layout,
    own_rss_bytes,
    plan_backend,
)
from ansible_collections.perfstats.profiler.plugins.plugin_utils._meters import (
    CgroupMeter,
    ProcessTreeMeter,
    psutil,
)

SCHEMA_VERSION = 1
RUN_GROUP_PREFIX = GROUP_PREFIX + "-run-"
Record = _Mapping[str, Any]  # typing's alias: subscriptable at run time on Python 3.8


@dataclass(frozen=True)
class SessionOptions:
    backend: str = "auto"
    base_group: str | None = None
    interval: float = 0.05


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % int((ts % 1) * 1000)


def _freeze(data: dict[str, Any]) -> Record:
    return MappingProxyType(data)


@dataclass
class _Window:
    index: int
    uuid: str
    name: str
    play: str
    kind: str
    start: float
    mono: float
    cpu0: CpuTimes | None
    own0: float = 0.0
    groups: list[GroupDir] = field(default_factory=list)
    meter: Any = None
    cpu_pct_max: float = 0.0
    mem_max: int = 0
    pids_max: int = 0
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: int = 0


class SessionError(Exception):
    """The session could not start with the chosen backend."""


class Session:
    """Accounting for one playbook run."""

    def __init__(
        self,
        options: SessionOptions,
        emit: Callable[[Record], None],
        sample_sink: Callable[[tuple], None] | None = None,
        warn: Callable[[str], None] | None = None,
        layout: Layout | None = None,
    ) -> None:
        self.options = options
        self._emit = emit
        self._sample_sink = sample_sink
        self._warn = warn or (lambda msg: None)
        self._layout = layout
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.run_id = ""
        self.plan: Plan | None = None
        self.backend = "none"
        self.notes: list[str] = []
        self._home: dict[str, GroupDir] = {}  # hierarchy key -> the group we came from
        self._run_groups: dict[str, GroupDir] = {}
        self._window_keys: list[str] = []  # hierarchies holding per-window groups
        self._pending: list[GroupDir] = []  # closed window groups not yet removed
        self._run_meter: Any = None
        self._window: _Window | None = None
        self._window_count = 0
        self._seq = 0
        self._tasks: list[Record] = []
        self._started = 0.0
        self._started_mono = 0.0
        self._cpu_start: CpuTimes | None = None
        self._last_sample: tuple[float, float] | None = None
        self._max_cpu_pct = 0.0
        self._max_mem_sampled = 0
        self._max_pids_sampled = 0
        self._samples = 0
        self._own_cpu = 0.0
        self._finished = False
        self._cleaned = False
        self._baseline_rss: int | None = None
        self._prev_sigterm: Any = None
        self.on_abort: Callable[[dict[str, Any]], None] | None = None

    # ------------------------------------------------------------------
    # start
    # ------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = detect_layout()
        return self._layout

    def start(self) -> None:
        """Create the run's groups and start sampling; falls back if it must."""
        self._started = time.time()
        self._started_mono = time.monotonic()
        self.run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._started)) + "-%d-%s" % (
            self._pid,
            secrets.token_hex(3),
        )
        self._baseline_rss = own_rss_bytes()
        backend = self.options.backend
        base = self.options.base_group
        plan, base_usable = choose_plan(self.layout, backend, base)
        if not base_usable:
            why = "; ".join(plan_backend(self.layout, backend, base).notes)
            self._warn("base group %r is not usable (%s); using the controller's own group" % (base, why))
        self.notes.extend(plan.notes)
        if plan.backend != "process":
            try:
                self._start_cgroups(plan)
            except SessionError as exc:
                self._remove_groups()
                self._home, self._window_keys, self._window = {}, [], None
                self.notes.append(str(exc))
                plan = plan_backend(self.layout, "process")
        if plan.backend == "process" and backend not in ("auto", "process"):
            self._warn("%s backend unavailable (%s); falling back to the process tree" % (backend, "; ".join(self.notes)))
        if plan.backend == "process":
            if psutil is None:
                raise SessionError("no usable cgroup and psutil is not installed: %s" % "; ".join(self.notes))
            self._run_meter = ProcessTreeMeter(self._pid)
        self.plan = plan
        self.backend = "process-tree" if plan.backend == "process" else plan.backend
        self._cpu_start = self._run_meter.cpu()
        self._install_exit_hooks()
        self._thread = threading.Thread(target=self._sample_loop, name="perfstats-sampler", daemon=True)
        self._thread.start()

    def _start_cgroups(self, plan: Plan) -> None:
        name = "%s%d-%s" % (RUN_GROUP_PREFIX, self._pid, self.run_id.rsplit("-", 1)[-1])
        by_metric: dict[str, GroupDir | None] = {m: None for m in METRICS}
        for hierarchy in plan.hierarchies:
            parent_path = plan.parent_of(hierarchy)
            if parent_path is None or hierarchy.own_dir is None:
                raise SessionError("%s: no parent group" % hierarchy.key)
            parent = GroupDir(parent_path, hierarchy.version)
            self._reap_stale(parent)
            made, err = parent.make_child(name)
            if made is None:
                raise SessionError("%s: cannot create %s/%s: %s" % (hierarchy.key, parent.path, name, os.strerror(err or 0)))
            # The run group's counters are read on every sample: keep them open.
            run = GroupDir(made.path, made.version, keep_open=True)
            self._run_groups[hierarchy.key] = run
            self._home[hierarchy.key] = GroupDir(hierarchy.own_dir, hierarchy.version)
            served = [m for m in METRICS if plan.sources[m].hierarchy == hierarchy]
            peaks = [m for m in served if m in (MEMORY, PIDS) and plan.sources[m].kernel_peak]
            if hierarchy.version == 2 and peaks:
                if not run.enable_controllers(peaks):
                    raise SessionError("unified: cannot enable %s for the run's children" % " ".join(peaks))
            if hierarchy.version == 1 and MEMORY in served and (made.read("memory.use_hierarchy") or "").strip() == "0":
                # Old v1 kernels: without it a group's usage omits its children.
                run.write("memory.use_hierarchy", "1")
            if peaks:
                self._window_keys.append(hierarchy.key)
            for metric in served:
                by_metric[metric] = run
        # Metrics no hierarchy serves are sampled from the processes of the
        # run's group in the CPU hierarchy (and the groups beneath it).
        members = by_metric[CPU]
        sampled_members = members if any(by_metric[m] is None for m in (MEMORY, PIDS)) else None
        self._run_meter = CgroupMeter(by_metric, sampled_members)
        # The whole controller goes into the run's groups once; from then on,
        # on v1, only the thread that opens windows (the one that forks
        # workers) moves from window to window.  A v2 group that enables
        # controllers for its children may hold no process itself: there the
        # controller goes straight into the first window.
        first = self._make_window_groups(0)
        for key, run in self._run_groups.items():
            window = first.get(key)
            if window is None or window.version == 2:
                err = (window or run).add_process(self._pid)
            else:
                err = run.add_process(self._pid)
                if err is None:
                    err = window.add_calling_thread(self._pid)
            if err is not None:
                raise SessionError("%s: cannot move the controller into the run's group: %s" % (key, os.strerror(err)))
        self._window = self._new_window(0, "", "(before the first task)", "", "setup", first)

    def _make_window_groups(self, index: int) -> dict[str, GroupDir]:
        groups: dict[str, GroupDir] = {}
        for key in self._window_keys:
            child, err = self._run_groups[key].make_child("%s-w%05d" % (GROUP_PREFIX, index))
            if child is None:
                raise SessionError("%s: cannot create a window group: %s" % (key, os.strerror(err or 0)))
            groups[key] = child
        return groups

    def _window_meter(self, groups: Mapping[str, GroupDir]) -> CgroupMeter | None:
        if not groups or self.plan is None:
            return None
        by_metric: dict[str, GroupDir | None] = {}
        for metric in (MEMORY, PIDS):
            hierarchy = self.plan.sources[metric].hierarchy
            if hierarchy is not None and hierarchy.key in groups:
                by_metric[metric] = groups[hierarchy.key]
        return CgroupMeter(by_metric)

    def _new_window(self, index: int, uuid: str, name: str, play: str, kind: str, groups: Mapping[str, GroupDir]) -> _Window:
        window = _Window(
            index=index,
            uuid=uuid,
            name=name,
            play=play,
            kind=kind,
            start=time.time(),
            mono=time.monotonic(),
            cpu0=self._run_meter.cpu(),
            own0=self._own_cpu,
            groups=list(groups.values()),
        )
        window.meter = self._window_meter(groups)
        return window

    def _reap_stale(self, parent: GroupDir) -> None:
        """Remove run groups left by runs that were killed outright."""
        try:
            names = os.listdir(parent.path)
        except OSError:
            return
        for entry in names:
            if not entry.startswith(RUN_GROUP_PREFIX):
                continue
            try:
                pid = int(entry[len(RUN_GROUP_PREFIX) :].split("-")[0])
            except ValueError:
                continue
            if pid == self._pid or _alive(pid):
                continue
            stale = parent.child(entry)
            for top, _dirs, _files in sorted(os.walk(stale.path), key=lambda t: -len(t[0])):
                GroupDir(top, parent.version).remove()

    # ------------------------------------------------------------------
    # windows and results
    # ------------------------------------------------------------------
    def open_window(self, uuid: str, name: str, play: str, kind: str = "task") -> None:
        """A task (or handler) starts: close the previous window, open its own."""
        with self._lock:
            if self._finished:
                return
            self._window_count += 1
            groups: dict[str, GroupDir] = {}
            if self._window_keys:
                groups = self._make_window_groups(self._window_count)
                for _key, group in groups.items():
                    err = group.add_calling_thread(self._pid)
                    if err is not None:
                        raise SessionError("cannot move the controller into %s: %s" % (group.path, os.strerror(err)))
            previous = self._window
            self._window = self._new_window(self._window_count, uuid, name, play, kind, groups)
            if previous is not None:
                self._close(previous, self._window.start, self._window.cpu0)

    def host_started(self, uuid: str, host: str) -> None:
        with self._lock:
            window = self._window
            if window is None or window.uuid != uuid:
                return
            window.hosts.setdefault(host, {"start": time.time(), "status": None, "items": 0})

    def host_result(self, uuid: str, host: str, status: str, item: bool = False) -> Record | None:
        """A host's result (or one loop item's) arrived: emit what is known of it.

        The figures are the task window's so far.  They are the host's own
        (``attribution: host``) when no other host has run in the window yet.
        """
        with self._lock:
            window = self._window
            if window is None or window.uuid != uuid or self._finished:
                return None
            now = time.time()
            entry = window.hosts.setdefault(host, {"start": window.start, "status": None, "items": 0})
            if item:
                entry["items"] += 1
                window.items += 1
            else:
                entry["status"] = status
            others = [h for h in window.hosts if h != host]
            cpu = self._run_meter.cpu()
            record = self._figures(window, now, cpu)
            record.update(
                scope="host",
                host=host,
                status=status,
                item=entry["items"] if item else None,
                items=entry["items"],
                attribution="task" if others else "host",
                host_start=iso(entry["start"]),
                host_duration_s=round(now - entry["start"], 6),
            )
            frozen = _freeze(record)
        self._emit(frozen)
        return frozen

    def _net(self, cpu: CpuTimes | None, since: CpuTimes | None, own_since: float) -> CpuTimes | None:
        """CPU used since ``since``, less what the sampler itself used meanwhile."""
        if cpu is None or since is None:
            return None
        delta = cpu.minus(since)
        own = max(0.0, self._own_cpu - own_since)
        if own <= 0.0 or delta.total <= 0.0:
            return delta
        total = max(0.0, delta.total - own)
        scale = total / delta.total
        return CpuTimes(delta.user * scale, delta.system * scale, total)

    def _figures(self, window: _Window, end: float, cpu: CpuTimes | None) -> dict[str, Any]:
        self._seq += 1
        delta = self._net(cpu, window.cpu0, window.own0)
        duration = max(0.0, end - window.start)
        mem_peak = window.meter.memory_peak() if window.meter is not None else None
        pids_peak = window.meter.pids_peak() if window.meter is not None else None
        mem_exact = mem_peak is not None
        pids_exact = pids_peak is not None
        # One reading of the run for the fallbacks and the memory at the end
        # (on the process tree, each separate call would walk the whole tree).
        _cpu, mem_now, pids_now = self._run_meter.read()
        if mem_peak is None:
            mem_peak = window.mem_max or mem_now
        if pids_peak is None:
            pids_peak = window.pids_max or pids_now
        cpu_pct = window.cpu_pct_max
        if delta is not None and duration > 0:
            cpu_pct = max(cpu_pct, 100.0 * delta.total / duration)
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "seq": self._seq,
            "task_uuid": window.uuid,
            "task_name": window.name,
            "task_kind": window.kind,
            "play": window.play,
            "start": iso(window.start),
            "end": iso(end),
            "duration_s": round(duration, 6),
            "cpu_user_s": None if delta is None else round(delta.user, 6),
            "cpu_system_s": None if delta is None else round(delta.system, 6),
            "cpu_total_s": None if delta is None else round(delta.total, 6),
            "cpu_pct_max": round(cpu_pct, 1),
            "memory_peak_bytes": mem_peak,
            "memory_peak_exact": mem_exact,
            "memory_end_bytes": mem_now,
            "pids_peak": pids_peak,
            "pids_peak_exact": pids_exact,
            "backend": self.backend,
        }

    def _close(self, window: _Window, end: float, cpu: CpuTimes | None) -> None:
        if window.kind != "setup":
            record = self._figures(window, end, cpu)
            statuses = sorted({h["status"] for h in window.hosts.values() if h["status"]})
            hosts = sorted(window.hosts)
            record.update(
                scope="task",
                host=hosts[0] if len(hosts) == 1 else None,
                hosts=hosts,
                statuses=statuses,
                items=window.items,
                attribution="host" if len(hosts) == 1 else "task",
            )
            frozen = _freeze(record)
            self._tasks.append(frozen)
            self._emit(frozen)
        self._pending.extend(window.groups)
        self._reap_pending()

    def _reap_pending(self) -> None:
        still = []
        for group in self._pending:
            if group.remove() is not None:
                still.append(group)
        self._pending = still

    # ------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------
    def _sample_loop(self) -> None:
        interval = self.options.interval
        while not self._stop.wait(interval):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a sampler never takes the run down
                self._warn("sampling stopped: %s" % exc)
                return

    def sample(self) -> None:
        own0 = time.thread_time()
        with self._lock:
            # Under the lock: the run group's files are shared with the main
            # thread's window boundaries, and closed by cleanup.
            if self._cleaned:
                return
            now = time.monotonic()
            cpu, mem, pids = self._run_meter.read()
            pct = 0.0
            if cpu is not None:
                if self._last_sample is not None and now > self._last_sample[0]:
                    pct = max(0.0, 100.0 * (cpu.total - self._last_sample[1]) / (now - self._last_sample[0]))
                self._last_sample = (now, cpu.total)
            self._samples += 1
            self._max_cpu_pct = max(self._max_cpu_pct, pct)
            self._max_mem_sampled = max(self._max_mem_sampled, mem or 0)
            self._max_pids_sampled = max(self._max_pids_sampled, pids or 0)
            window = self._window
            if window is not None:
                window.cpu_pct_max = max(window.cpu_pct_max, pct)
                window.mem_max = max(window.mem_max, mem or 0)
                window.pids_max = max(window.pids_max, pids or 0)
                index = window.index
            else:
                index = -1
        if self._sample_sink is not None:
            self._sample_sink((round(now - self._started_mono, 4), round(pct, 1), mem, pids, index))
        # The sampler's own CPU is the profiler's cost, not the tasks': it is
        # kept apart and taken out of the figures (summary: profiler_cpu_s).
        with self._lock:
            self._own_cpu += time.thread_time() - own0

    # ------------------------------------------------------------------
    # end
    # ------------------------------------------------------------------
    @property
    def tasks(self) -> list[Record]:
        return list(self._tasks)

    def finish(self, complete: bool = True) -> dict[str, Any]:
        """Close the last window, stop sampling, remove the groups; the run's totals."""
        with self._lock:
            if self._finished:
                return {}
            end = time.time()
            cpu = self._run_meter.cpu() if self._run_meter is not None else None
            if self._window is not None:
                self._close(self._window, end, cpu)
            self._finished = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        run_mem_peak = self._run_meter.memory_peak() if self._run_meter is not None else None
        run_pids_peak = self._run_meter.pids_peak() if self._run_meter is not None else None
        total = self._net(cpu, self._cpu_start, 0.0)
        self.cleanup()
        duration = end - self._started
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "complete": complete,
            "start": iso(self._started),
            "end": iso(end),
            "duration_s": round(duration, 6),
            "backend": self.backend,
            "exact": {
                "cpu": self.backend != "process-tree",
                "memory_peak": run_mem_peak is not None,
                "pids_peak": run_pids_peak is not None,
            },
            "cpu_user_s": None if total is None else round(total.user, 6),
            "cpu_system_s": None if total is None else round(total.system, 6),
            "cpu_total_s": None if total is None else round(total.total, 6),
            "cpu_pct_max": round(max(self._max_cpu_pct, 100.0 * total.total / duration if total and duration > 0 else 0.0), 1),
            "memory_peak_bytes": run_mem_peak if run_mem_peak is not None else self._max_mem_sampled,
            "pids_peak": run_pids_peak if run_pids_peak is not None else self._max_pids_sampled,
            "controller_rss_at_start_bytes": self._baseline_rss,
            "tasks": len(self._tasks),
            "samples": self._samples,
            "profiler_cpu_s": round(self._own_cpu, 6),
            "interval_s": self.options.interval,
            "plan": None if self.plan is None else self.plan.as_dict(),
            "notes": list(self.notes),
            "cgroup_layout": self.layout.as_dict(),
            "kernel": os.uname().release,
        }

    def cleanup(self) -> list[str]:
        """Move the controller home and remove every group this run made.

        Safe to call more than once and from any exit path; answers the
        groups that could not be removed (also reported through ``warn``).
        """
        with self._lock:
            if self._cleaned:
                return []
            self._cleaned = True
            self._finished = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._restore_signals()
        left = self._remove_groups()
        if left:
            self._warn("could not remove cgroup(s): %s" % ", ".join(left))
        return left

    def _remove_groups(self) -> list[str]:
        for home in self._home.values():
            home.add_process(self._pid)
        left: list[str] = []
        for key, run in self._run_groups.items():
            run.close()
            home = self._home.get(key)
            # Processes the run left behind (say, a persistent ssh master) go
            # back to the group the controller came from.
            for _attempt in range(20):
                busy = False
                for top, _dirs, _files in sorted(os.walk(run.path), key=lambda t: -len(t[0])):
                    group = GroupDir(top, run.version)
                    for pid in group.procs() or ():
                        if home is not None:
                            home.add_process(pid)
                    err = group.remove()
                    if err is not None:
                        busy = True
                if not busy:
                    break
                time.sleep(0.05)
            if run.exists():
                left.append(run.path)
        self._run_groups = {}
        self._pending = []
        return left

    # ------------------------------------------------------------------
    # exit paths
    # ------------------------------------------------------------------
    def _install_exit_hooks(self) -> None:
        atexit.register(self._at_exit)
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if current is signal.SIG_IGN or current is None:
            return  # an ignored SIGTERM stays ignored
        try:
            self._prev_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        except (ValueError, OSError):
            self._prev_sigterm = None

    def _restore_signals(self) -> None:
        if self._prev_sigterm is not None and threading.current_thread() is threading.main_thread():
            try:
                signal.signal(signal.SIGTERM, self._prev_sigterm)
            except (ValueError, OSError, TypeError):
                pass
            self._prev_sigterm = None

    def _at_exit(self) -> None:
        if os.getpid() != self._pid:
            return  # a forked worker inherits the hook; only the controller cleans up
        self.abort()

    def abort(self) -> dict[str, Any] | None:
        """An unfinished run ends (interrupt, error): mark it incomplete and clean up."""
        if self._finished:
            self.cleanup()
            return None
        summary = None
        try:
            summary = self.finish(complete=False)
        finally:
            self.cleanup()
        if summary and self.on_abort is not None:
            self.on_abort(summary)
        return summary

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        previous = self._prev_sigterm
        if os.getpid() == self._pid:
            self.abort()
        # Then exactly what would have happened without us.
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


__all__ = ["Record", "Session", "SessionError", "SessionOptions", "iso"]
