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
