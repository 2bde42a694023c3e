"""The controller role applied for real to localhost, everything it writes in temporary directories.

The base group is relative (``perfstats-base-<random>``), so it lies beneath
this test's own group in every hierarchy, and it is removed after each test.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import own_dirs, prepared_keys, python_burn, remove_tree

ROLE_PLAY = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: perfstats.profiler.controller
"""

PROFILED_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: warm-up
      ansible.builtin.command: "{{ ansible_playbook_python }} -c pass"
    - name: baseline
      ansible.builtin.command: "{{ ansible_playbook_python }} -c pass"
    - name: burn
      %s
""" % python_burn(1.0).replace("\n", "\n      ")


class Controller:
    """One prepared controller: the role's variables and the files it manages."""

    def __init__(self, harness, root: Path, base: str) -> None:
        self.harness = harness
        self.root = root
        self.base = base
        self.cfg = root / "etc" / "ansible.cfg"
        self.env_file = root / "etc" / "perfstats.env"
        self.units = root / "units"
        self.output = root / "perfstats-out"
        self.vars: dict = {
            "controller_base_group": base,
            "controller_delegate_user": "nobody",
            "controller_ansible_cfg": str(self.cfg),
            "controller_env_file": str(self.env_file),
            "controller_systemd_persist": "always",
            "controller_systemd_unit_dir": str(self.units),
            "controller_callback_options": {"output_dir": str(self.output), "recap_top": 5},
        }

    def apply(self, *extra: str, **overrides):
        variables = dict(self.vars, **overrides)
        run = self.harness.run(
            ROLE_PLAY,
            enabled=False,
            files={"vars.json": json.dumps(variables)},
            args=["-e", "@vars.json", *extra],
        )
        return run

    def profiled(self, playbook: str = PROFILED_PLAY, background: bool = False):
        """A playbook run configured only by the files the role wrote."""
        return self.harness.run(
            playbook,
            enabled=False,
            env={"ANSIBLE_CONFIG": str(self.cfg)},
            args=["-i", "inventory.ini"],
            background=background,
        )

    def base_dirs(self) -> dict[str, Path]:
        return {key: own_dirs()[key] / self.base for key in prepared_keys()}

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.output.iterdir() if p.is_dir()) if self.output.is_dir() else []


def recap(run) -> dict[str, int]:
    match = re.search(r"localhost\s+:\s+(.*)", run.stdout)
    assert match, run.stdout + run.stderr
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def ok(run) -> dict[str, int]:
    counts = recap(run)
    assert run.rc == 0 and counts["failed"] == 0, run.stdout + run.stderr
    return counts


@pytest.fixture
def controller(harness, tmp_path):
    base = "perfstats-base-%s" % os.urandom(4).hex()
    prepared = Controller(harness, tmp_path / "host", base)
    prepared.units.mkdir(parents=True)  # as /etc/systemd/system is on a systemd host
    yield prepared
    for own in own_dirs().values():
        remove_tree(own / base)


def test_apply_is_idempotent_and_check_mode_changes_nothing(controller):
    checked = ok(controller.apply("--check"))
    assert checked["changed"] > 0
    assert not any(path.exists() for path in controller.base_dirs().values())
    assert not controller.cfg.exists() and not controller.env_file.exists() and list(controller.units.iterdir()) == []

    assert ok(controller.apply())["changed"] > 0
    for key, path in controller.base_dirs().items():
        assert path.is_dir(), key
        assert path.stat().st_uid == 65534, key
        for name in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads", "tasks"):
            if (path / name).exists():
                assert (path / name).stat().st_uid == 65534, (key, name)
    parser = configparser.ConfigParser()
    parser.read(controller.cfg)
    assert parser["defaults"]["callbacks_enabled"] == "perfstats.profiler.profile_resources"
    assert parser["callback_profile_resources"]["enabled"] == "false"
    assert parser["callback_profile_resources"]["base_group"] == controller.base
    env = dict(line.split("=", 1) for line in controller.env_file.read_text().splitlines() if "=" in line)
    assert env["PERFSTATS_ENABLED"] == "false" and env["PERFSTATS_BASE_GROUP"] == controller.base

    assert ok(controller.apply())["changed"] == 0
    assert ok(controller.apply("--check"))["changed"] == 0


def test_switch_on_runs_in_the_prepared_base_with_exact_figures(controller):
    ok(controller.apply(controller_profiling_enabled=True))
    run = controller.profiled()
    assert run.rc == 0, run.stdout + run.stderr
    (run_dir,) = controller.run_dirs()
    summary = json.loads((run_dir / "summary.json").read_text())
    bases = controller.base_dirs()
    for metric, source in summary["plan"]["metrics"].items():
        assert source["parent"] == str(bases[source["hierarchy"]]), (metric, source)
    assert summary["config"]["base_group"]["value"] == controller.base
    assert summary["config"]["enabled"]["origin"].startswith("ini")
    tasks = {}
    for line in (run_dir / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["scope"] == "task":
            tasks[record["task_name"]] = record
    # The burn's second is in the burn's window (the controller's own polling adds to it under
    # load; a task's own overhead varies by up to a tenth of a second from task to task).
    extra = tasks["burn"]["cpu_total_s"] - tasks["baseline"]["cpu_total_s"]
    assert extra >= 0.9, tasks
    for record in tasks.values():
        assert record["memory_peak_exact"] is True and record["pids_peak_exact"] is True, record
    # The kernel's own counters of the base (which only this run used) hold the run's figures.
    cpu = summary["plan"]["metrics"]["cpu"]
    if cpu["version"] == 2:
        stat = dict(line.split() for line in (bases[cpu["hierarchy"]] / "cpu.stat").read_text().splitlines())
        usage = int(stat["usage_usec"]) / 1e6
    else:
        usage = int((bases[cpu["hierarchy"]] / "cpuacct.usage").read_text()) / 1e9
    assert summary["cpu_total_s"] <= usage <= summary["cpu_total_s"] + 0.1, (usage, summary["cpu_total_s"])
    memory = summary["plan"]["metrics"]["memory"]
    if memory["version"] == 1:
        peak = int((bases[memory["hierarchy"]] / "memory.max_usage_in_bytes").read_text())
        assert max(r["memory_peak_bytes"] for r in tasks.values()) <= peak
    pids = summary["plan"]["metrics"]["pids"]
    if (bases[pids["hierarchy"]] / "pids.peak").exists():
        assert max(r["pids_peak"] for r in tasks.values()) <= int((bases[pids["hierarchy"]] / "pids.peak").read_text())
    # The run removed its own groups: the base is empty again.
    for path in bases.values():
        assert [p for p in path.iterdir() if p.is_dir()] == []


def test_switch_off_leaves_the_callback_dormant(controller):
    ok(controller.apply())
    run = controller.profiled()
    assert run.rc == 0, run.stdout + run.stderr
    assert "PERFSTATS RECAP" not in run.stdout
    assert controller.run_dirs() == []


def test_flipping_the_switch_changes_one_line_and_spares_a_running_run(controller):
    ok(controller.apply(controller_profiling_enabled=True))
    before = controller.cfg.read_text()
    env_before = controller.env_file.read_text()
    playbook = (
        PROFILED_PLAY
        + """
    - name: long
      ansible.builtin.command: sleep 4
    - name: after
      ansible.builtin.command: "true"
"""
    )
    proc, _workdir, _out = controller.profiled(playbook, background=True)
    try:
        deadline = time.monotonic() + 60
        while not controller.run_dirs() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert controller.run_dirs(), "the background run never started profiling"
        flipped = controller.apply("--diff", controller_profiling_enabled=False)
        # One block in ansible.cfg and one in the environment file.
        assert ok(flipped)["changed"] == 2
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    assert "-enabled = true" in flipped.stdout and "+enabled = false" in flipped.stdout
    after = controller.cfg.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [("enabled = true", "enabled = false")]
    env_after = controller.env_file.read_text()
    changed = [(a, b) for a, b in zip(env_before.splitlines(), env_after.splitlines()) if a != b]
    assert changed == [("PERFSTATS_ENABLED=true", "PERFSTATS_ENABLED=false")]
    # The running run kept profiling to its end.
    (run_dir,) = controller.run_dirs()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is True
    names = {json.loads(line)["task_name"] for line in (run_dir / "records.jsonl").read_text().splitlines()}
    assert {"burn", "long", "after"} <= names
    assert "PERFSTATS RECAP" in stdout
    # Runs started afterwards are dormant.
    later = controller.profiled()
    assert later.rc == 0 and controller.run_dirs() == [run_dir]


def test_existing_configuration_is_kept_and_foreign_callback_lines_stop_the_role(controller):
    controller.cfg.parent.mkdir(parents=True)
    controller.cfg.write_text("[defaults]\nforks = 7\n\n[ssh_connection]\npipelining = true\n")
    ok(controller.apply())
    parser = configparser.ConfigParser()
    parser.read(controller.cfg)  # one [defaults] section: a duplicate would raise here
    assert parser["defaults"]["forks"] == "7"
    assert parser["defaults"]["callbacks_enabled"] == "perfstats.profiler.profile_resources"
    assert parser["ssh_connection"]["pipelining"] == "true"
    assert ok(controller.apply())["changed"] == 0
    # Ansible itself reads the result.
    dump = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-config"), "dump", "--only-changed"],
        env=dict(os.environ, ANSIBLE_CONFIG=str(controller.cfg)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert dump.returncode == 0, dump.stderr
    assert re.search(r"CALLBACKS_ENABLED.*perfstats\.profiler\.profile_resources", dump.stdout), dump.stdout

    other = controller.root / "other.cfg"
    other.write_text("[defaults]\ncallbacks_enabled = ansible.posix.timer\n")
    failed = controller.apply(controller_ansible_cfg=str(other))
    assert failed.rc == 2
    assert "controller_other_callbacks" in failed.stdout
    assert other.read_text() == "[defaults]\ncallbacks_enabled = ansible.posix.timer\n"


def test_rendered_units_pass_systemd_verification(controller):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    ok(controller.apply(controller_systemd_delegate_service="perfstats-test-runner.service"))
    unit = controller.units / "perfstats-profiler-base.service"
    text = unit.read_text()
    for path in controller.base_dirs().values():
        assert "ExecStart=/bin/mkdir -p %s\n" % path in text
    # A stand-in for the named service, so that its drop-in is verified with it.
    service = controller.units / "perfstats-test-runner.service"
    service.write_text("[Service]\nType=simple\nExecStart=/bin/true\n")
    dropin = controller.units / "perfstats-test-runner.service.d" / "50-perfstats-profiler-delegate.conf"
    assert "Delegate=memory pids" in dropin.read_text()
    env = dict(os.environ, SYSTEMD_UNIT_PATH="%s:" % controller.units)
    for path in (unit, service):
        done = subprocess.run([analyze, "verify", "--man=no", str(path)], capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0 and done.stderr.strip() == "", (path.name, done.stdout + done.stderr)
    # The verifier does fail on a broken unit.
    broken = controller.units / "perfstats-broken.service"
    broken.write_text(text.replace("Type=oneshot", "Type=simple"))
    done = subprocess.run([analyze, "verify", "--man=no", str(broken)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode != 0
    broken.unlink()
    service.unlink()


def test_state_absent_removes_everything(controller):
    ok(controller.apply(controller_profiling_enabled=True, controller_systemd_delegate_service="perfstats-test-runner.service"))
    assert all(path.is_dir() for path in controller.base_dirs().values())
    # A profiled run leaves nothing the role would have to know about.
    assert controller.profiled().rc == 0
    shutil.rmtree(controller.output)
    checked = ok(
        controller.apply(
            "--check", controller_state="absent", controller_systemd_delegate_service="perfstats-test-runner.service"
        )
    )
    assert checked["changed"] > 0
    assert all(path.is_dir() for path in controller.base_dirs().values())
    assert controller.cfg.exists()
    removed = ok(controller.apply(controller_state="absent", controller_systemd_delegate_service="perfstats-test-runner.service"))
    assert removed["changed"] > 0
    assert not any(path.exists() for path in controller.base_dirs().values())
    left = sorted(str(p.relative_to(controller.root)) for p in controller.root.rglob("*") if not p.is_dir())
    assert left == []
    assert not (controller.units / "perfstats-test-runner.service.d").exists()
    again = ok(controller.apply(controller_state="absent", controller_systemd_delegate_service="perfstats-test-runner.service"))
    assert again["changed"] == 0


RUNNER = Path(__file__).resolve().parents[2] / "runner"


@pytest.mark.slow
def test_runner_integration_installs_into_a_virtualenv_and_goes_away(controller):
    if not (RUNNER / "pyproject.toml").exists():
        pytest.skip("the collection has no runner/ package yet")
    venv = controller.root / "venv"
    python = Path(sys.base_prefix) / "bin" / "python3"
    first = controller.apply(controller_runner_virtualenv=str(venv), controller_runner_python=str(python))
    assert ok(first)["changed"] > 0
    show = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "show", "perfstats-profiler-runner"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert show.returncode == 0, show.stderr
    second = controller.apply(controller_runner_virtualenv=str(venv), controller_runner_python=str(python))
    assert ok(second)["changed"] == 0, second.stdout
    ok(controller.apply(controller_state="absent", controller_runner_virtualenv=str(venv)))
    show = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "show", "perfstats-profiler-runner"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert show.returncode != 0
    shutil.rmtree(venv)
