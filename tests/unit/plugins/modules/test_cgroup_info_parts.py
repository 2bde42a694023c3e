"""The cgroup_info module's building blocks against recorded file trees (and plain stat bits)."""

from __future__ import annotations

import os
import stat

import pytest
from cgroup_trees import HYBRID, V1, V2, materialize

from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups as cg
from ansible_collections.perfstats.profiler.plugins.modules import cgroup_info


def layout_of(tree: dict, root) -> cg.Layout:
    return cg.layout_from(*materialize(tree, root))


# ---- where a relative base is resolved from ----


@pytest.mark.parametrize(
    ("own", "base", "home"),
    [
        ("/user.slice/session-3.scope", None, "/user.slice/session-3.scope"),
        ("/user.slice/session-3.scope", "perfstats-base", "/user.slice/session-3.scope"),
        ("/a/perfstats-run-12-ab12cd/perfstats-w00003", None, "/a"),
        ("/a/perfstats-run-12-ab12cd/perfstats-w00003", "/perfstats-base", "/a"),
        ("/a/perfstats-base/perfstats-run-12-ab12cd/perfstats-w00003", "perfstats-base", "/a"),
        ("/a/perfstats-base/perfstats-run-12-ab12cd", "perfstats-base/", "/a"),
        ("/perfstats-base/perfstats-run-12-ab12cd/perfstats-w00001", "perfstats-base", "/"),
        ("/perfstats-run-12-ab12cd/perfstats-w00001", None, "/"),
        # Only the base directly above the run is dropped.
        ("/other/perfstats-run-1-x/perfstats-w00001", "perfstats-base", "/other"),
        # Group names that merely start alike are not run groups.
        ("/a/perfstats-runner", None, "/a/perfstats-runner"),
    ],
)
def test_home_path(own, base, home):
    assert cg.home_path(own, base) == home


def test_home_layout_moves_own_dirs_up_with_their_paths(tmp_path):
    layout = layout_of(V1, tmp_path)
    nested = []
    for h in layout.hierarchies:
        suffix = "/perfstats-base/perfstats-run-7-aa/perfstats-w00002"
        nested.append(h._replace(own_path=h.own_path.rstrip("/") + suffix, own_dir=h.own_dir + suffix))
    moved = cg.home_layout(cg.Layout(layout.mode, tuple(nested)), "perfstats-base")
    assert [(h.own_path, h.own_dir) for h in moved.hierarchies] == [(h.own_path, h.own_dir) for h in layout.hierarchies]
    assert cg.home_layout(layout, "perfstats-base") == layout


# ---- permissions judged for another user ----


@pytest.mark.parametrize(
    ("mode", "owner", "group", "uid", "gids", "want", "allowed"),
    [
        (0o755, 10, 10, 10, frozenset(), os.W_OK | os.X_OK, True),
        (0o755, 10, 10, 11, frozenset({10}), os.W_OK | os.X_OK, False),
        (0o775, 10, 10, 11, frozenset({10}), os.W_OK | os.X_OK, True),
        (0o757, 10, 10, 11, frozenset(), os.W_OK | os.X_OK, True),
        (0o575, 10, 10, 10, frozenset({10}), os.W_OK, False),  # the owner's bits apply, not the group's
        (0o000, 10, 10, 0, frozenset(), os.W_OK, True),  # root
        (0o644, 10, 10, 11, frozenset(), os.R_OK, True),
        (0o640, 10, 10, 11, frozenset(), os.R_OK, False),
    ],
)
def test_mode_allows(mode, owner, group, uid, gids, want, allowed):
    assert cg.mode_allows(stat.S_IFDIR | mode, owner, group, uid, gids, want) is allowed


def test_user_may_reads_the_real_bits(tmp_path):
    target = tmp_path / "cgroup.procs"
    target.write_text("")
    target.chmod(0o600)
    owner = target.stat().st_uid
    assert cg.user_may(str(target), owner, frozenset(), os.W_OK)
    assert not cg.user_may(str(target), owner + 1, frozenset(), os.W_OK)
    target.chmod(0o606)
    assert cg.user_may(str(target), owner + 1, frozenset(), os.W_OK)
    assert not cg.user_may(str(tmp_path / "missing"), owner, frozenset(), os.R_OK)


@pytest.mark.parametrize(
    ("first", "second", "ancestor"),
    [
        ("/sys/fs/cgroup/a/b", "/sys/fs/cgroup/a/c", "/sys/fs/cgroup/a"),
        ("/sys/fs/cgroup/a", "/sys/fs/cgroup/a/base", "/sys/fs/cgroup/a"),
        ("/sys/fs/cgroup/ab", "/sys/fs/cgroup/a", "/sys/fs/cgroup"),
        ("/x", "/y", "/"),
    ],
)
def test_common_ancestor(first, second, ancestor):
    assert cg.common_ancestor(first, second) == ancestor


# ---- plan, with and without a usable base ----


def test_choose_plan_drops_an_unusable_base_like_a_run(tmp_path):
    layout = layout_of(HYBRID, tmp_path)
    plan, usable = cg.choose_plan(layout, "auto", "perfstats-base")
    assert usable is False
    assert plan == cg.plan_backend(layout, "auto", None)
    for h in cg.base_hierarchies(layout):
        os.makedirs(cg.base_dir(h, "perfstats-base"))
    plan, usable = cg.choose_plan(layout, "auto", "perfstats-base")
    assert usable is True
    assert plan.sources[cg.MEMORY].parent == os.path.join(layout.v1("memory").own_dir, "perfstats-base")
    # A forced process backend keeps the base "usable": no cgroup was asked for.
    assert cg.choose_plan(layout, "process", "perfstats-missing")[1] is True


def test_base_hierarchies_are_unified_and_the_profiled_v1_ones(tmp_path):
    keys = [h.key for h in cg.base_hierarchies(layout_of(HYBRID, tmp_path))]
    assert "unified" in keys
    assert not any(key.startswith("name=") for key in keys)
    assert all(key == "unified" or set(key.split(",")) & {"cpuacct", "memory", "pids"} for key in keys)


# ---- kernel features ----


def test_kernel_features_v2_reset_needs_6_12(tmp_path, monkeypatch):
    layout = layout_of(V2, tmp_path)
    monkeypatch.setattr(cg, "kernel_release", lambda: "6.11.9-generic")
    early = cg.kernel_features(layout)
    assert early["memory_peak"] and early["memory_peak_v2"] and early["pids_peak"]
    assert early["memory_peak_reset"] is False
    monkeypatch.setattr(cg, "kernel_release", lambda: "6.12.0")
    assert cg.kernel_features(layout)["memory_peak_reset"] is True


def test_kernel_features_old_v1(tmp_path, monkeypatch):
    monkeypatch.setattr(cg, "kernel_release", lambda: "3.10.0-1160.el7.x86_64")
    features = cg.kernel_features(layout_of(V1, tmp_path))
    assert features == {"memory_peak": True, "memory_peak_v2": False, "memory_peak_reset": False, "pids_peak": False}


# ---- the module's own pieces ----


def test_chain_lists_directories_beneath_the_anchor():
    assert cgroup_info._chain("/sys/fs/cgroup", "/sys/fs/cgroup/a/b") == ["/sys/fs/cgroup/a", "/sys/fs/cgroup/a/b"]
    assert cgroup_info._chain("/sys/fs/cgroup/", "/sys/fs/cgroup/a") == ["/sys/fs/cgroup/a"]
    assert cgroup_info._chain("/sys/fs/cgroup/x", "/sys/fs/cgroup/xy") == []


def test_delegation_of_a_v2_base_for_another_user(tmp_path):
    layout = layout_of(V2, tmp_path)
    (v2,) = cg.base_hierarchies(layout)
    base = tmp_path / "sys/fs/cgroup/perfstats-base"
    base.mkdir()
    for name, text in (("cgroup.controllers", "memory pids\n"), ("cgroup.subtree_control", ""), ("cgroup.procs", "")):
        (base / name).write_text(text)
    (base / "cgroup.threads").write_text("")
    user = cgroup_info.pwd.struct_passwd(("someone", "x", 4242, 4242, "", "/", "/bin/sh"))
    base.chmod(0o755)
    entry = cgroup_info._base_entry(v2, "/perfstats-base")
    assert entry["exists"] and entry["processes"] == 0 and entry["chain"] == [str(base)]
    denied = cgroup_info._delegation_entry(v2, entry, user, frozenset({4242}), False, False)
    assert denied["create"] is False and "may not create" in denied["reason"]
    # Delegated: the directory and its files writable by the user (here through "other" bits).
    base.chmod(0o757)
    for name in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
        (base / name).chmod(0o646)
    granted = cgroup_info._delegation_entry(v2, entry, user, frozenset({4242}), False, False)
    assert granted["create"] is True and granted["reason"] == ""
    # An empty base whose subtree_control the user may write can offer what it has.
    assert granted["offered"] == ["memory", "pids"]
    assert granted["probed"] is False
    controllers = cgroup_info._controllers([v2], [granted])
    assert controllers["memory"] == {"ok": True, "hierarchy": "unified", "reason": ""}
    assert controllers["cpu"]["ok"] is True


def test_controllers_fall_back_to_v1_and_explain_a_refusal(tmp_path):
    layout = layout_of(V1, tmp_path)
    prepared = cg.base_hierarchies(layout)
    delegated = [
        {"key": h.key, "create": h.key == "memory", "offered": sorted(h.controllers), "reason": "no write access to " + h.key}
        for h in prepared
    ]
    answer = cgroup_info._controllers(prepared, delegated)
    assert answer["memory"]["ok"] is True and answer["memory"]["hierarchy"] == "memory"
    assert answer["cpu"] == {"ok": False, "hierarchy": None, "reason": "no write access to cpu,cpuacct"}
    assert answer["pids"]["ok"] is False and answer["pids"]["reason"] == "no write access to pids"
