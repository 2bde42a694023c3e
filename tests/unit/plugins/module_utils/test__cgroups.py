"""Kernel readers against recorded v2, v1, hybrid and container file trees."""

from __future__ import annotations

import os

import pytest
from cgroup_trees import CONTAINER_RO, HYBRID, V1, V2, materialize

from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups as cg


def layout_of(tree: dict, root) -> cg.Layout:
    return cg.layout_from(*materialize(tree, root))


# ---- single-value and keyed files ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12\n", 12), ("max\n", None), ("", None), ("\n", None), ("junk\n", None), (None, None), ("0\n", 0)],
)
def test_parse_int(text, expected):
    assert cg.parse_int(text) == expected


def test_parse_flat_keyed_skips_malformed_lines():
    text = "usage_usec 10\nbroken\nuser_usec x\nsystem_usec 4\n\n"
    assert cg.parse_flat_keyed(text) == {"usage_usec": 10, "system_usec": 4}
    assert cg.parse_flat_keyed("") is None
    assert cg.parse_flat_keyed(None) is None


def test_mountinfo_escapes_and_foreign_mounts():
    text = "1 0 0:1 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n2 0 0:2 / /proc rw - proc proc rw\ngarbage line\n"
    mounts = cg.parse_mountinfo(text)
    assert [m.mountpoint for m in mounts] == ["/mnt/with space"]


def test_proc_cgroup_rows():
    rows = cg.parse_proc_cgroup("4:memory:/a/b\n0::/x\nbad\n1:name=systemd:/\n")
    assert rows == [(4, frozenset({"memory"}), "/a/b"), (0, frozenset(), "/x"), (1, frozenset({"name=systemd"}), "/")]


# ---- layouts ----


def test_v2_layout_and_readers(tmp_path):
    layout = layout_of(V2, tmp_path)
    assert layout.mode == "v2"
    v2 = layout.v2
    assert v2.own_dir == str(tmp_path / "sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope")
    group = cg.GroupDir(v2.own_dir, 2)
    assert group.cpu() == cg.CpuTimes(6.0, 2.123456, 8.123456)
    assert group.memory_current() == 73400320
    assert group.memory_peak() == 104857600
    assert group.memory_stat()["anon"] == 52428800
    assert (group.pids_current(), group.pids_peak()) == (7, 19)
    assert group.procs() == [1234, 1250]
    assert group.controllers() == frozenset({"memory", "pids"})
    assert group.subtree_control() == frozenset()
    assert cg.read_int(group.file("memory.max")) is None  # "max" means no limit


def test_v1_layout_with_old_kernel_files(tmp_path):
    layout = layout_of(V1, tmp_path)
    assert layout.mode == "v1"
    cpu = layout.v1("cpuacct")
    assert cpu is not None and cpu.controllers == frozenset({"cpu", "cpuacct"})
    group = cg.GroupDir(cpu.own_dir, 1)
    times = group.cpu()
    # cpuacct.stat is in USER_HZ ticks; the total comes from cpuacct.usage (ns).
    hz = os.sysconf("SC_CLK_TCK")
    assert times == cg.CpuTimes(400 / hz, 125 / hz, 5.25)
    memory = cg.GroupDir(layout.v1("memory").own_dir, 1)
    assert (memory.memory_current(), memory.memory_peak()) == (209715200, 314572800)
    pids = cg.GroupDir(layout.v1("pids").own_dir, 1)
    assert pids.pids_current() == 12
    assert pids.pids_peak() is None  # kernels before 6.1 have no pids.peak


def test_hybrid_resolves_each_metric_to_its_controller(tmp_path):
    layout = layout_of(HYBRID, tmp_path)
    assert layout.mode == "hybrid"
    assert layout.v2.controllers == frozenset()
    plan = cg.plan_backend(layout, "auto")
    assert plan.backend == "hybrid"
    assert plan.sources[cg.CPU].hierarchy.version == 2  # cpu.stat exists without the cpu controller
    assert plan.sources[cg.MEMORY].hierarchy.key == "memory"
    assert plan.sources[cg.PIDS].hierarchy.key == "pids"
    assert plan.sources[cg.PIDS].kernel_peak is True  # the group's pids.peak is there
    cpu = cg.GroupDir(layout.v1("cpuacct").own_dir, 1).cpu()
    assert cpu == cg.CpuTimes(1.1, 0.5, 1.6)  # ns files preferred over ticks
    forced = cg.plan_backend(layout, "cgroup1")
    assert forced.backend == "cgroup1" and forced.sources[cg.CPU].hierarchy.key == "cpu,cpuacct"


def test_v2_own_group_with_processes_cannot_offer_memory(tmp_path):
    """A v2 group holding processes can't enable controllers for children: memory is sampled."""
    layout = layout_of(V2, tmp_path)
    plan = cg.plan_backend(layout, "auto")
    assert plan.backend == "cgroup2"
    assert plan.sources[cg.MEMORY].hierarchy is None
    assert any("memory" in note for note in plan.notes)


def test_v2_prepared_base_offers_memory_and_pids(tmp_path):
    layout = layout_of(V2, tmp_path)
    base = tmp_path / "sys/fs/cgroup/perfstats.slice"
    base.mkdir()
    (base / "cgroup.controllers").write_text("cpu memory pids\n")
    (base / "cgroup.subtree_control").write_text("memory pids\n")
    (base / "cgroup.procs").write_text("")
    (base / "memory.peak").write_text("0\n")
    (base / "pids.peak").write_text("0\n")
    plan = cg.plan_backend(layout, "auto", "/perfstats.slice")
    assert plan.backend == "cgroup2"
    assert plan.sources[cg.MEMORY].parent == str(base)
    assert plan.sources[cg.MEMORY].kernel_peak and plan.sources[cg.PIDS].kernel_peak


def test_relative_base_is_beneath_each_own_group(tmp_path):
    layout = layout_of(HYBRID, tmp_path)
    plan = cg.plan_backend(layout, "cgroup1", "perfstats-base")
    # Missing base dirs are not usable: the plan says so instead of guessing.
    assert plan.backend == "process"
    for hierarchy in layout.hierarchies:
        if hierarchy.own_dir and hierarchy.version == 1:
            os.makedirs(os.path.join(hierarchy.own_dir, "perfstats-base"), exist_ok=True)
    plan = cg.plan_backend(layout, "cgroup1", "perfstats-base")
    assert plan.sources[cg.MEMORY].parent == os.path.join(layout.v1("memory").own_dir, "perfstats-base")
    assert plan.sources[cg.CPU].parent == os.path.join(layout.v1("cpuacct").own_dir, "perfstats-base")


def test_read_only_container_falls_back_to_process_tree(tmp_path):
    layout = layout_of(CONTAINER_RO, tmp_path)
    assert layout.mode == "v2"
    assert layout.v2.read_only
    assert layout.v2.own_dir == str(tmp_path / "sys/fs/cgroup")  # the mount root is the own group
    plan = cg.plan_backend(layout, "auto")
    assert plan.backend == "process"
    assert any("read-only" in note for note in plan.notes)


def test_path_outside_the_mounted_subtree_is_not_guessed():
    mount = cg.Mount(2, "/sys/fs/cgroup", "/system.slice/docker-abc.scope", frozenset(), False)
    assert cg.group_dir(mount, "/system.slice/other.scope") is None
    assert cg.group_dir(mount, "/system.slice/docker-abc.scope/child") == "/sys/fs/cgroup/child"


def test_no_cgroups_at_all():
    layout = cg.build_layout([], cg.parse_proc_cgroup(""))
    assert layout.mode == "none"
    assert cg.plan_backend(layout).backend == "process"


# ---- damaged trees ----


def test_missing_and_empty_files_read_as_none(tmp_path):
    layout = layout_of(V2, tmp_path)
    group = cg.GroupDir(layout.v2.own_dir, 2)
    os.remove(group.file("memory.peak"))
    (tmp_path / group.file("pids.current")).write_text("")
    (tmp_path / group.file("cpu.stat")).write_text("user_usec 5\n")  # no usage_usec
    assert group.memory_peak() is None
    assert group.pids_current() is None
    assert group.cpu() is None
    gone = cg.GroupDir(str(tmp_path / "nowhere"), 2)
    assert (gone.cpu(), gone.memory_current(), gone.procs(), gone.controllers()) == (None, None, None, None)


def test_a_directory_where_a_file_should_be_reads_as_none(tmp_path):
    group = cg.GroupDir(str(tmp_path), 1)
    (tmp_path / "pids.current").mkdir()
    assert group.pids_current() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges to nobody for a real EACCES")
def test_permission_denied_reads_as_none(tmp_path):
    secret = tmp_path / "memory.current"
    secret.write_text("123\n")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    group = cg.GroupDir(str(tmp_path), 2)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops to nobody and reports what the readers answer
        try:
            os.setgid(65534)
            os.setuid(65534)
            answer = "%s %s %s" % (group.memory_current(), group.write("memory.current", "1"), group.add_process(1))
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    out = os.read(read_end, 1024).decode().split()
    os.close(read_end)
    assert out[0] == "None" and out[1] == "False" and out[2] != "None"
