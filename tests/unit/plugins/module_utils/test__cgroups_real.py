"""The readers on this machine's real cgroupfs (groups made beneath our own, then removed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups as cg

LAYOUT = cg.detect_layout()
MIB = 1024 * 1024


def _own(controller: str | None) -> cg.Hierarchy | None:
    hierarchy = LAYOUT.v2 if controller is None else LAYOUT.v1(controller)
    if hierarchy is None or hierarchy.own_dir is None or not os.access(hierarchy.own_dir, os.W_OK):
        return None
    return hierarchy


def _child_group(hierarchy: cg.Hierarchy, tag: str) -> cg.GroupDir:
    parent = cg.GroupDir(hierarchy.own_dir, hierarchy.version)
    group, err = parent.make_child("perfstats-test-%s-%d" % (tag, os.getpid()))
    if group is None:
        pytest.skip("cannot create a group beneath %s: %s" % (parent.path, os.strerror(err or 0)))
    return group


def _run_inside(group: cg.GroupDir, code: str) -> subprocess.Popen:
    """Start a Python child that first moves itself into ``group``."""
    prelude = "import os\nopen(%r, 'w').write(str(os.getpid()))\n" % group.file("cgroup.procs")
    return subprocess.Popen([sys.executable, "-c", prelude + code])


def test_detection_matches_proc_self_cgroup():
    rows = cg.parse_proc_cgroup(open("/proc/self/cgroup").read())
    paths = {",".join(sorted(names)) or "unified": path for _hid, names, path in rows}
    assert LAYOUT.mode in ("v1", "v2", "hybrid", "none")
    for hierarchy in LAYOUT.hierarchies:
        assert hierarchy.own_path == paths[hierarchy.key]
        if hierarchy.own_dir:
            assert os.path.isfile(os.path.join(hierarchy.own_dir, "cgroup.procs"))


@pytest.mark.skipif(_own("memory") is None, reason="no writable v1 memory hierarchy here")
def test_v1_memory_peak_and_its_reset():
    group = _child_group(_own("memory"), "mem")
    try:
        child = _run_inside(group, "import time\nb = bytearray(80 * 1024 * 1024)\ndel b\ntime.sleep(0.5)\n")
        time.sleep(0.3)
        assert group.memory_peak() >= 80 * MIB
        child.wait()
        assert group.reset_memory_peak()
        assert group.memory_peak() < 80 * MIB  # back to the current usage
        assert group.memory_stat() is not None
    finally:
        assert group.remove() is None


@pytest.mark.skipif(_own("pids") is None, reason="no writable v1 pids hierarchy here")
def test_v1_pids_current_and_peak():
    group = _child_group(_own("pids"), "pids")
    try:
        child = _run_inside(
            group, "import subprocess\nps = [subprocess.Popen(['sleep', '0.5']) for _ in range(12)]\n[p.wait() for p in ps]\n"
        )
        time.sleep(0.3)
        assert group.pids_current() >= 13
        child.wait()
        if group.pids_peak() is None:
            pytest.skip("this kernel has no v1 pids.peak (before 6.1)")
        assert group.pids_peak() >= 13
        assert group.pids_current() == 0
    finally:
        assert group.remove() is None


@pytest.mark.skipif(_own(None) is None, reason="no writable cgroup v2 hierarchy here")
def test_v2_cpu_stat_counts_a_burn():
    group = _child_group(_own(None), "cpu")
    try:
        before = group.cpu()
        child = _run_inside(group, "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n")
        child.wait()
        used = group.cpu().minus(before)
        assert 0.4 <= used.total <= 0.6
        assert abs(used.user + used.system - used.total) < 0.05  # user and system add up to the total
    finally:
        assert group.remove() is None


@pytest.mark.skipif(_own(None) is None and _own("pids") is None, reason="no writable hierarchy here")
def test_a_removed_group_reads_as_none_even_from_an_open_file():
    hierarchy = _own(None) or _own("pids")
    group = _child_group(hierarchy, "gone")
    name = "cpu.stat" if hierarchy.version == 2 else "pids.current"
    handle = open(group.file(name))
    assert group.remove() is None
    with pytest.raises(OSError):  # the kernel answers ENODEV for a file of a removed group
        handle.read()
    handle.close()
    assert group.cpu() is None and group.pids_current() is None and group.procs() is None
    assert not group.exists()


@pytest.mark.skipif(_own("memory") is None, reason="no writable v1 memory hierarchy here")
def test_can_create_child_probe_leaves_nothing():
    hierarchy = _own("memory")
    parent = cg.GroupDir(hierarchy.own_dir, hierarchy.version)
    before = set(os.listdir(parent.path))
    assert cg.can_create_child(parent) == (True, None)
    assert set(os.listdir(parent.path)) == before


_THREAD_MOVE = r"""
import os, sys, threading
sys.path[:0] = [p for p in os.environ["PERFSTATS_TEST_PATH"].split(os.pathsep) if p]
from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups as cg

run, window, home = (cg.GroupDir(p, 1) for p in sys.argv[1:4])
stop = threading.Event()
helper = threading.Thread(target=stop.wait)
helper.start()
assert run.add_process(os.getpid()) is None
assert window.add_calling_thread(os.getpid()) is None

def where(tid):
    for line in open("/proc/self/task/%d/cgroup" % tid):
        if ":pids:" in line:
            return line.strip().split(":", 2)[2]

child = os.fork()
if child == 0:
    os._exit(0 if where(os.getpid()).endswith(os.path.basename(window.path)) else 1)
_pid, status = os.waitpid(child, 0)
print(where(threading.get_native_id()), where(helper.native_id), os.waitstatus_to_exitcode(status))
stop.set()
helper.join()
assert home.add_process(os.getpid()) is None
"""


@pytest.mark.skipif(_own("pids") is None, reason="no writable v1 pids hierarchy here")
def test_v1_calling_thread_moves_alone_and_forks_into_its_group():
    hierarchy = _own("pids")
    run = _child_group(hierarchy, "run")
    window, err = run.make_child("w")
    assert window is not None, os.strerror(err or 0)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _THREAD_MOVE, run.path, window.path, hierarchy.own_dir],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=dict(os.environ, PERFSTATS_TEST_PATH=os.pathsep.join(sys.path)),
        )
        assert done.returncode == 0, done.stderr
        main_at, helper_at, child_ok = done.stdout.split()
        assert main_at.endswith("/w")  # the calling thread, and only it, moved on
        assert helper_at.endswith(os.path.basename(run.path))
        assert child_ok == "0"  # a process it forks is born in the window's group
    finally:
        assert window.remove() is None
        assert run.remove() is None
