"""The cgroup_info module, run for real by ansible-playbook against localhost.

Expected values come from the kernel files, read here independently of the
module (``/proc/self/cgroup`` and ``/proc/self/mounts``), or from what a real
profiled run did.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from harness import own_dirs, prepared_keys, remove_tree

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def base_name():
    """A relative base group name; whatever is left of it is removed at the end."""
    name = "perfstats-base-%s" % secrets.token_hex(4)
    yield name
    for own in own_dirs().values():
        remove_tree(own / name)


def run_module(harness, args: dict[str, Any], *, check: bool = False, enabled: bool = False, **kwargs) -> tuple[Any, dict]:
    """Run cgroup_info once; answer the run and the module's result."""
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: report
          perfstats.profiler.cgroup_info: "{{ module_args }}"
          register: report
        - name: keep
          ansible.builtin.copy:
            content: "{{ report | to_json }}"
            dest: "{{ playbook_dir }}/report.json"
            mode: "0600"
          check_mode: false
    """
    run = harness.run(
        playbook,
        enabled=enabled,
        files={"args.json": json.dumps({"module_args": args})},
        args=["-e", "@args.json"] + (["--check"] if check else []),
        **kwargs,
    )
    report_file = run.workdir / "report.json"
    result = json.loads(report_file.read_text()) if report_file.exists() else {}
    return run, result


def mkgroups(name: str, owner: int | None = None) -> dict[str, Path]:
    made = {}
    for key in prepared_keys():
        path = own_dirs()[key] / name
        path.mkdir()
        made[key] = path
        if owner is not None:
            os.chown(path, owner, -1)
            for entry in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads", "tasks"):
                if (path / entry).exists():
                    os.chown(path / entry, owner, -1)
    return made


def test_layout_and_own_groups_match_the_kernel(harness):
    run, result = run_module(harness, {})
    assert run.rc == 0, run.stdout + run.stderr
    assert result["changed"] is False
    dirs = own_dirs()
    by_key = {h["key"]: h for h in result["hierarchies"]}
    for key, path in dirs.items():
        assert by_key[key]["own_dir"] == str(path), (key, by_key[key])
        assert by_key[key]["home_dir"] == str(path)
    has_v2 = "unified" in dirs
    v1_controllers = {"cpu", "cpuacct", "memory", "pids", "blkio", "devices", "freezer", "cpuset"}
    has_v1 = any(set(key.split(",")) & v1_controllers for key in dirs)
    modes = {(True, True): "hybrid", (True, False): "v2", (False, True): "v1"}
    assert result["cgroup_mode"] == modes.get((has_v2, has_v1), "none")
    mounted = {
        line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines() if line.split()[2] in ("cgroup", "cgroup2")
    }
    assert {m["mountpoint"] for m in result["mounts"]} == mounted
    assert result["kernel"]["release"] == os.uname().release
    # The module runs with the playbook's Python, which has psutil.
    import psutil

    assert result["psutil"] == {"available": True, "version": psutil.__version__}
    # Peak counters: the files exist in a fresh group of the hierarchy serving the metric.
    memory_dir = dirs.get("memory")
    if memory_dir is not None and (memory_dir / "memory.max_usage_in_bytes").exists():
        assert result["kernel"]["memory_peak"] is True
    pids_dir = dirs.get("pids")
    if pids_dir is not None and (pids_dir / "pids.peak").exists():
        assert result["kernel"]["pids_peak"] is True


def test_backend_is_the_one_a_profiled_run_uses(harness):
    _run, result = run_module(harness, {})
    profiled = harness.run(
        """
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: one
              ansible.builtin.command: "true"
        """
    )
    assert profiled.rc == 0, profiled.stderr
    summary = profiled.summary()
    assert result["backend"] == summary["plan"]["backend"]
    for metric, source in summary["plan"]["metrics"].items():
        assert result["plan"]["metrics"][metric]["parent"] == source["parent"], metric
        assert result["plan"]["metrics"][metric]["hierarchy"] == source["hierarchy"], metric


def test_relative_base_resolves_beneath_the_own_group(harness, base_name):
    _run, result = run_module(harness, {"base_group": base_name})
    bases = {b["key"]: b for b in result["base"]["hierarchies"]}
    assert sorted(bases) == sorted(prepared_keys())
    for key, entry in bases.items():
        assert entry["dir"] == str(own_dirs()[key] / base_name)
        assert entry["exists"] is False
        assert entry["chain"] == [entry["dir"]]
    assert result["delegation"]["ok"] is False
    # A base that does not exist is not usable: the plan is the own group's.
    assert result["plan"]["base_usable"] is False


def test_home_group_inside_a_profiled_run(harness, base_name):
    """A module started by a profiled run resolves a relative base where the run's controller did."""
    mkgroups(base_name)
    run, result = run_module(harness, {"base_group": base_name}, enabled=True, settings={"base_group": base_name})
    assert run.rc == 0, run.stdout + run.stderr
    plan = run.summary()["plan"]["metrics"]
    by_key = {h["key"]: h for h in result["hierarchies"]}
    # The module itself ran inside the run's groups beneath the base ...
    assert "/perfstats-run-" in by_key[plan["memory"]["hierarchy"]]["own_path"]
    # ... and still resolves the base where the callback did.
    for metric, source in plan.items():
        entry = next(b for b in result["base"]["hierarchies"] if b["key"] == source["hierarchy"])
        assert entry["dir"] == source["parent"] == str(own_dirs()[source["hierarchy"]] / base_name), metric


def test_delegation_for_another_user_follows_ownership(harness, base_name):
    mkgroups(base_name)
    _run, before = run_module(harness, {"base_group": base_name, "user": "nobody"})
    assert before["delegation"]["method"] == "permissions"
    assert before["delegation"]["uid"] == 65534
    assert before["delegation"]["ok"] is False
    assert all("may not create" in h["reason"] for h in before["delegation"]["hierarchies"])
    for key in prepared_keys():
        os.chown(own_dirs()[key] / base_name, 65534, -1)
        for entry in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads", "tasks"):
            if (own_dirs()[key] / base_name / entry).exists():
                os.chown(own_dirs()[key] / base_name / entry, 65534, -1)
    _run, after = run_module(harness, {"base_group": base_name, "user": "nobody"})
    assert after["delegation"]["ok"] is True, after["delegation"]
    assert {h["key"] for h in after["delegation"]["hierarchies"] if h["create"]} == set(prepared_keys())
    for entry in after["base"]["hierarchies"]:
        assert entry["owner"] == 65534


def test_probe_as_the_calling_user_and_not_in_check_mode(harness, base_name):
    mkgroups(base_name)
    _run, probed = run_module(harness, {"base_group": base_name})
    assert probed["delegation"]["method"] == "probe"
    assert all(h["probed"] and h["create"] for h in probed["delegation"]["hierarchies"])
    assert probed["delegation"]["ok"] is True
    assert probed["plan"]["base_usable"] is True
    for entry in probed["base"]["hierarchies"]:
        # The probe group is gone again: only the base is left, empty.
        assert [p.name for p in Path(entry["dir"]).iterdir() if p.is_dir()] == []
    run, checked = run_module(harness, {"base_group": base_name}, check=True)
    assert run.rc == 0, run.stdout
    assert checked["delegation"]["method"] == "permissions"
    assert not any(h["probed"] for h in checked["delegation"]["hierarchies"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"base_group": "../escape"}, "without '..'"),
        ({"user": "no-such-user-%s" % secrets.token_hex(3)}, "does not exist on this host"),
        ({"backend": "cgroup3"}, "value of backend must be one of"),
    ],
)
def test_bad_input_fails_with_one_clear_message(harness, args, message):
    run, _result = run_module(harness, args)
    assert run.rc == 2
    assert message in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


PY36 = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions" / "3.6.15" / "bin" / "python"


def test_module_logic_runs_on_python_3_6(tmp_path):
    """The module's report is built by Python 3.6 as well (ansible-core 2.19 cannot drive a 3.6 target)."""
    python = os.environ.get("PERFSTATS_PY36") or (str(PY36) if PY36.exists() else shutil.which("python3.6"))
    if not python:
        pytest.skip("no Python 3.6 interpreter found (set PERFSTATS_PY36 to one)")
    tree = REPO / "build" / "pytest-tree"
    stub = tmp_path / "stub" / "ansible" / "module_utils"
    stub.mkdir(parents=True)
    for package in (stub.parent, stub):
        (package / "__init__.py").write_text("")
    # Only the import of AnsibleModule is stood in for: gather() does not use it.
    (stub / "basic.py").write_text("class AnsibleModule(object):\n    pass\n")
    script = textwrap.dedent(
        """
        import json, sys
        sys.path[:0] = [%r, %r]
        from ansible_collections.perfstats.profiler.plugins.modules import cgroup_info
        print(json.dumps(cgroup_info.gather(%r, None, "auto", False, False)))
        """
        % (str(tmp_path / "stub"), str(tree), "perfstats-absent-%s" % secrets.token_hex(3))
    )
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    here = subprocess.run(
        [sys.executable, "-c", script.replace(repr(str(tmp_path / "stub")), repr(str(tmp_path / "none")))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert here.returncode == 0, here.stderr
    native = json.loads(here.stdout)
    assert report["psutil"]["available"] is False  # pyenv's 3.6 has no psutil
    for key in ("cgroup_mode", "hierarchies", "own_groups", "backend", "plan", "base", "kernel"):
        assert report[key] == native[key], key
