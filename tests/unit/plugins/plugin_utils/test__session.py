"""The session on this machine's real cgroupfs (and the process-tree fallback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import perfstats_groups

from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups as cg

DRIVER = str(Path(__file__).resolve().parents[3] / "session_driver.py")
MIB = 1024 * 1024
LAYOUT = cg.detect_layout()
KERNEL_BACKENDS = [b for b in ("auto", "cgroup1", "cgroup2") if cg.plan_backend(LAYOUT, b).backend != "process"]

needs_cgroups = pytest.mark.skipif(
    not KERNEL_BACKENDS or os.geteuid() != 0,
    reason="no writable cgroup hierarchy here (needs root on a cgroup host)",
)


def drive(scenario: dict, **kwargs) -> dict:
    done = subprocess.run(
        [sys.executable, DRIVER, json.dumps(scenario)], capture_output=True, text=True, timeout=120, check=False, **kwargs
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    result = lines[-1]
    result["started"] = lines[0]
    result["lines"] = lines
    return result


def by_name(result: dict, scope: str = "task") -> dict:
    return {r["task_name"]: r for r in result["records"] if r["scope"] == scope}


@needs_cgroups
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_windows_scope_kernel_peaks(backend):
    result = drive(
        {
            "backend": backend,
            "interval": 1.0,  # far too slow to catch the spike: only a kernel peak can
            "windows": [
                {"name": "idle", "kind": "sleep", "seconds": 0.2},
                {"name": "spike", "kind": "spike", "mib": 150, "idle": 0.3},
                {"name": "fork", "kind": "fork", "count": 25},
                {"name": "after", "kind": "sleep", "seconds": 0.2},
            ],
        }
    )
    tasks = by_name(result)
    assert set(tasks) == {"idle", "spike", "fork", "after"}
    summary = result["summary"]
    assert summary["backend"] == result["started"]["started"]
    if tasks["spike"]["memory_peak_exact"]:
        assert tasks["spike"]["memory_peak_bytes"] >= 150 * MIB
        assert tasks["idle"]["memory_peak_bytes"] < 150 * MIB
    else:
        # No kernel memory peak with this backend here: say so rather than pass silently.
        assert backend == "cgroup2", tasks["spike"]
        print("cgroup2 on this host has no memory controller: memory peaks are sampled, spike not asserted")
    if tasks["fork"]["pids_peak_exact"]:
        assert tasks["fork"]["pids_peak"] >= 25
        assert tasks["after"]["pids_peak"] < 25  # a fresh window group forgets the fan-out
    else:
        assert backend == "cgroup2", tasks["fork"]
        assert tasks["fork"]["pids_peak"] >= 1
    # Host records are written as results arrive, tasks when their window closes.
    hosts = by_name(result, "host")
    assert set(hosts) == set(tasks)
    assert all(h["attribution"] == "host" for h in hosts.values())


@needs_cgroups
def test_groups_are_made_beneath_own_group_and_removed():
    proc = subprocess.Popen(
        [sys.executable, DRIVER, json.dumps({"windows": [{"name": "wait", "kind": "sleep", "seconds": 1.5}]})],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = json.loads(proc.stdout.readline())
    time.sleep(0.5)
    during = _perfstats_dirs(proc.pid)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert during, "no run group was made"
    own = {h.own_dir for h in LAYOUT.hierarchies if h.own_dir}
    for path in during:
        parent = os.path.dirname(path)
        while os.path.basename(parent).startswith("perfstats"):
            parent = os.path.dirname(parent)
        assert parent in own, "%s is not beneath the process's own group" % path
    assert started["run_id"].rsplit("-", 1)[-1] in " ".join(sorted(during))
    assert _perfstats_dirs(proc.pid) == set()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@needs_cgroups
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signals_remove_groups_and_keep_the_outcome(signame):
    before = _perfstats_dirs()
    done = subprocess.run(
        [sys.executable, DRIVER, json.dumps({"windows": [{"name": "x", "kind": "sleep", "seconds": 0.1, "signal": signame}]})],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # A suite started in the background inherits SIGINT ignored; the driver gets Python's usual handling.
        preexec_fn=_default_sigint,  # noqa: PLW1509 - only resets one signal disposition
    )
    # Exactly what the signal does without the profiler: SIGTERM kills, SIGINT raises KeyboardInterrupt.
    if signame == "SIGTERM":
        assert done.returncode == -signal.SIGTERM
    else:
        assert done.returncode == -signal.SIGINT and "KeyboardInterrupt" in done.stderr
    assert _perfstats_dirs() - before == set()


@needs_cgroups
def test_lingering_process_goes_home_and_groups_are_removed():
    before = _perfstats_dirs()
    result = drive(
        {"windows": [{"name": "daemon", "kind": "daemon", "seconds": 30}, {"name": "next", "kind": "sleep", "seconds": 0.1}]}
    )
    assert _perfstats_dirs() - before == set()
    # The daemon survived the run, back in the group its run came from.
    pid = next(line["daemon"] for line in result["lines"] if "daemon" in line)
    try:
        text = Path("/proc/%d/cgroup" % pid).read_text()  # raises if the daemon died
        assert "perfstats" not in text
    finally:
        os.kill(pid, signal.SIGTERM)
    assert result["summary"]["complete"] is True


@needs_cgroups
def test_stale_groups_of_killed_runs_are_reaped():
    memory = LAYOUT.v1("memory") or LAYOUT.v2
    parent = cg.GroupDir(memory.own_dir, memory.version)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, err = parent.make_child("perfstats-run-%d-dead00" % dead.pid)
    assert err is None
    child, _err = stale.make_child("perfstats-w00001")
    try:
        drive({"backend": "auto", "windows": [{"name": "x", "kind": "sleep", "seconds": 0.1}]})
        assert not stale.exists()
    finally:
        for group in (child, stale):
            group.remove()


# Loads lasting several 20 ms samples, for the backends that sample memory and PIDs.
SAMPLED_LOADS = [
    {"name": "sleep", "kind": "sleep", "seconds": 0.3},
    {"name": "burn", "kind": "burn", "seconds": 0.5},
    {"name": "hold", "kind": "hold", "mib": 120, "seconds": 0.5},
    {"name": "fork", "kind": "fork", "count": 20, "seconds": 0.6},
]


def test_process_tree_fallback_measures_the_tree():
    pytest.importorskip("psutil", reason="the process-tree backend needs psutil")
    result = drive(
        {
            "backend": "process",
            "interval": 0.02,
            "windows": SAMPLED_LOADS,
        }
    )
    tasks = by_name(result)
    assert result["summary"]["backend"] == "process-tree"
    assert 0.45 <= tasks["burn"]["cpu_total_s"] - tasks["sleep"]["cpu_total_s"] <= 0.6
    assert tasks["hold"]["memory_peak_bytes"] >= 120 * MIB and not tasks["hold"]["memory_peak_exact"]
    assert tasks["fork"]["pids_peak"] >= 20 and not tasks["fork"]["pids_peak_exact"]


@needs_cgroups
def test_cgroup2_without_controllers_samples_the_groups_members():
    """Memory and PIDs sampled from the processes in the run's v2 groups, next to cpu.stat's exact CPU."""
    plan = cg.plan_backend(LAYOUT, "cgroup2")
    if plan.backend == "process":
        pytest.skip("no writable cgroup v2 hierarchy here: %s" % "; ".join(plan.notes))
    result = drive(
        {
            "backend": "cgroup2",
            "interval": 0.02,
            "windows": SAMPLED_LOADS,
        }
    )
    tasks = by_name(result)
    assert 0.45 <= tasks["burn"]["cpu_total_s"] - tasks["sleep"]["cpu_total_s"] <= 0.6
    assert tasks["hold"]["memory_peak_bytes"] >= 120 * MIB
    assert tasks["sleep"]["memory_peak_bytes"] < 120 * MIB
    assert tasks["fork"]["pids_peak"] >= 20
    assert tasks["sleep"]["pids_peak"] < 20
    if tasks["hold"]["memory_peak_exact"] or tasks["fork"]["pids_peak_exact"]:
        print("cgroup2 here has memory or pids controllers: peaks were the kernel's, not sampled")


def _perfstats_dirs(pid: int | None = None) -> set[str]:
    """perfstats groups beneath our own groups (only those of run ``pid`` if given)."""
    if pid is None:
        return perfstats_groups()
    mark = "perfstats-run-%d-" % pid
    found = set()
    for hierarchy in LAYOUT.hierarchies:
        if not hierarchy.own_dir:
            continue
        for top, dirs, _files in os.walk(hierarchy.own_dir):
            found.update(os.path.join(top, d) for d in dirs if mark in os.path.join(top, d))
    return found


def test_a_forced_backend_that_cannot_be_used_warns_once_and_uses_the_tree(tmp_path):
    """A read-only cgroupfs (a container): cgroup2 forced, the process tree measured."""
    pytest.importorskip("psutil", reason="the process-tree backend needs psutil")
    from cgroup_trees import CONTAINER_RO, materialize

    from ansible_collections.perfstats.profiler.plugins.plugin_utils._session import Session, SessionOptions

    mountinfo, proc_cgroup = materialize(CONTAINER_RO, tmp_path)
    mounts = cg.parse_mountinfo(mountinfo, {str(tmp_path / "sys/fs/cgroup"): frozenset({"cpu", "memory", "pids"})})
    layout = cg.build_layout(mounts, cg.parse_proc_cgroup(proc_cgroup))
    records, warnings = [], []
    session = Session(SessionOptions(backend="cgroup2", interval=0.02), emit=records.append, warn=warnings.append, layout=layout)
    session.start()
    try:
        session.open_window("u1", "a task", "play")
        time.sleep(0.1)
    finally:
        summary = session.finish()
    assert summary["backend"] == "process-tree"
    assert len(warnings) == 1 and "cgroup2 backend unavailable" in warnings[0] and "read-only" in warnings[0]
    assert [r["task_name"] for r in records] == ["a task"]
    assert records[0]["memory_peak_exact"] is False and records[0]["memory_peak_bytes"] > 0


@pytest.mark.parametrize("tree", ["V2", "V1"])
def test_where_the_controller_goes_at_start_on_recorded_trees(tmp_path, tree):
    """v2: straight into the first window (a group enabling controllers for its children holds no
    process); v1: the process into the run group, then the calling thread into the first window."""
    import cgroup_trees

    from ansible_collections.perfstats.profiler.plugins.plugin_utils._session import Session, SessionOptions

    mountinfo, proc_cgroup = cgroup_trees.materialize(getattr(cgroup_trees, tree), tmp_path)
    base = None
    if tree == "V2":
        # A base group prepared for delegation (as the controller role makes it): empty, offering both.
        base = "/perfstats.slice"
        prepared = tmp_path / "sys/fs/cgroup/perfstats.slice"
        prepared.mkdir()
        for name, text in {"cgroup.controllers": "memory pids\n", "cgroup.subtree_control": "memory pids\n"}.items():
            (prepared / name).write_text(text)
        (prepared / "cgroup.procs").write_text("")
    offered = {str(tmp_path / "sys/fs/cgroup"): frozenset({"cpu", "memory", "pids"})} if tree == "V2" else None
    mounts = cg.parse_mountinfo(mountinfo, offered)
    layout = cg.build_layout(mounts, cg.parse_proc_cgroup(proc_cgroup))
    backend = {"V2": "cgroup2", "V1": "cgroup1"}[tree]
    plan = cg.plan_backend(layout, backend, base)
    assert plan.sources["memory"].kernel_peak, plan.notes  # the recorded tree offers a kernel memory peak
    options = SessionOptions(backend=backend, base_group=base, interval=5.0)
    session = Session(options, emit=lambda r: None, warn=lambda w: None, layout=layout)
    session.start()
    try:
        runs = [Path(d) for d in tmp_path.rglob("perfstats-run-*") if d.is_dir()]
        assert runs, "no run group made"
        windows = [run / "perfstats-w00000" for run in runs if (run / "perfstats-w00000").is_dir()]
        assert windows, "no first window made"
        for window in windows:
            run = window.parent
            if tree == "V2":
                assert (window / "cgroup.procs").read_text() == str(os.getpid())
                assert not (run / "cgroup.procs").exists()
            else:
                assert (run / "cgroup.procs").read_text() == str(os.getpid())
                assert (window / "tasks").read_text() == "0"
                assert not (window / "cgroup.procs").exists()
    finally:
        session.abort()
