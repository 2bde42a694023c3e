"""The callback under Ansible's constructs, options, interruptions and failures."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

TWO_HOSTS = """\
[web]
host1 ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"
host2 ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"
"""

CONSTRUCTS = {
    "site.yml": """
    - name: first play
      hosts: web
      gather_facts: false
      roles:
        - probe
      tasks:
        - name: loop
          ansible.builtin.command: "echo {{ item }}"
          loop: [a, b, c]
          notify: the handler
          changed_when: true
        - name: included
          ansible.builtin.include_tasks: more.yml
        - name: imported
          ansible.builtin.import_tasks: more.yml
        - name: guarded
          block:
            - name: breaks
              ansible.builtin.fail: {msg: boom}
          rescue:
            - name: rescues
              ansible.builtin.debug: {msg: rescued}
          always:
            - name: always runs
              ansible.builtin.debug: {msg: always}
        - name: in the background
          ansible.builtin.command: sleep 1
          async: 60
          poll: 3
        - name: hidden
          ansible.builtin.debug: {msg: "secret-value-1234"}
          no_log: true
      handlers:
        - name: the handler
          ansible.builtin.debug: {msg: handled}

    - name: second play
      hosts: web
      gather_facts: false
      serial: 1
      tasks:
        - name: serial task
          ansible.builtin.debug: {msg: "{{ inventory_hostname }}"}

    - name: third play
      hosts: web
      gather_facts: false
      strategy: free
      tasks:
        - name: free one
          ansible.builtin.command: "true"
        - name: free two
          ansible.builtin.command: "true"
    """,
    "more.yml": """
    - name: from a file
      ansible.builtin.debug: {msg: hi}
    """,
    "roles/probe/tasks/main.yml": """
    - name: role task
      ansible.builtin.command: "true"
    """,
}


def test_constructs_get_windows(harness):
    files = dict(CONSTRUCTS)
    playbook = files.pop("site.yml")
    # The async job's files go to a directory of the test's own, wherever HOME points.
    run = harness.run(playbook, inventory=TWO_HOSTS, files=files, env={"ANSIBLE_ASYNC_DIR": str(harness.base / "async")})
    assert run.rc == 0, run.stdout + run.stderr
    records = run.records()
    tasks = [r for r in records if r["scope"] == "task"]
    names = [r["task_name"] for r in tasks]
    # Every window is one record; the task count matches the recap's.
    assert run.summary()["tasks"] == len(tasks)
    assert "probe : role task" in names
    loop = next(r for r in tasks if r["task_name"] == "loop")
    assert loop["items"] == 6 and loop["hosts"] == ["host1", "host2"] and loop["attribution"] == "task"
    items = [r for r in records if r["scope"] == "host" and r["task_name"] == "loop" and r["item"]]
    assert len(items) == 6
    assert names.count("from a file") == 2  # included and imported
    assert {"breaks", "rescues", "always runs"} <= set(names)
    assert next(r for r in tasks if r["task_name"] == "breaks")["statuses"] == ["failed"]
    handler = next(r for r in tasks if r["task_kind"] == "handler")
    assert handler["task_name"] == "the handler"
    background = next(r for r in tasks if r["task_name"] == "in the background")
    assert background["duration_s"] >= 1.0
    # serial: one window per batch
    assert names.count("serial task") == 2
    assert {r["host"] for r in tasks if r["task_name"] == "serial task"} == {"host1", "host2"}
    # free strategy: a window opens each time Ansible announces a task, which
    # it does again when hosts interleave; never more often than once a host.
    assert 1 <= names.count("free one") <= 2 and 1 <= names.count("free two") <= 2
    free_hosts = [h for r in tasks if r["task_name"].startswith("free ") for h in r["hosts"]]
    assert set(free_hosts) == {"host1", "host2"}
    plays = {r["play"] for r in tasks}
    assert {"first play", "second play", "third play"} <= plays
    # no_log: a censored name, and nothing of arguments or results anywhere
    assert "(no_log task)" in names
    raw = (run.run_dir / "records.jsonl").read_text() + (run.run_dir / "summary.json").read_text()
    assert "secret-value-1234" not in raw and "hidden" not in raw
    assert "echo" not in raw and "boom" not in raw and "rescued" not in raw


UNREACHABLE = """\
localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"
nowhere ansible_host=nowhere.invalid ansible_connection=ssh ansible_ssh_common_args="-o ConnectTimeout=2"
"""

OUTCOMES = {
    "success": ("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: ok}\n", None),
    "failure": (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail: {msg: no}\n"
        "    - ansible.builtin.debug: {msg: never}\n",
        None,
    ),
    "unreachable": ("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n", UNREACHABLE),
    "rescued": (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - block:\n        - ansible.builtin.fail: {msg: no}\n"
        "      rescue:\n        - ansible.builtin.debug: {msg: fine}\n",
        None,
    ),
    "end_play": (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.meta: end_play\n"
        "    - ansible.builtin.debug: {msg: never}\n",
        None,
    ),
    "any_errors_fatal": (
        "- hosts: all\n  gather_facts: false\n  any_errors_fatal: true\n  tasks:\n"
        "    - ansible.builtin.fail: {msg: no}\n      when: inventory_hostname == 'host1'\n"
        "    - ansible.builtin.debug: {msg: never}\n",
        TWO_HOSTS,
    ),
}


def _play_recap(stdout: str) -> str:
    return stdout[stdout.index("PLAY RECAP") :].split("\n\n", maxsplit=1)[0]


@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_outcome_unchanged(harness, outcome):
    playbook, inventory = OUTCOMES[outcome]
    plain = harness.run(playbook, enabled=False, inventory=inventory)
    profiled = harness.run(playbook, inventory=inventory)
    quiet = harness.run(playbook, inventory=inventory, settings={"recap": "false"})
    assert plain.rc == profiled.rc == quiet.rc
    assert _play_recap(plain.stdout) == _play_recap(profiled.stdout) == _play_recap(quiet.stdout)
    if inventory is None:
        # One host: the whole of stdout is deterministic, so it must be identical.
        # (With several hosts Ansible itself may order their lines differently.)
        assert profiled.before_recap() == plain.normalized(plain.stdout)
        assert quiet.normalized(quiet.stdout) == plain.normalized(plain.stdout)
    assert quiet.run_dirs(), "profiling must still happen with the recap off"


@pytest.mark.parametrize("stdout_callback", ["default", "minimal", "oneline"])
def test_recap_off_keeps_stdout_byte_identical(harness, stdout_callback):
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: one
          ansible.builtin.debug: {msg: one}
        - name: two
          ansible.builtin.set_fact: {x: 1}
        - name: three
          ansible.builtin.debug: {var: x}
    """
    plain = harness.run(playbook, enabled=False, stdout_callback=stdout_callback)
    quiet = harness.run(playbook, stdout_callback=stdout_callback, settings={"recap": "no"})
    assert plain.rc == quiet.rc == 0
    assert quiet.normalized(quiet.stdout) == plain.normalized(plain.stdout)
    assert len(quiet.tasks()) == 3


BAD_OPTIONS = [
    ({"sample_interval": "-1"}, "sample_interval"),
    ({"sample_interval": "fast"}, "sample_interval"),
    ({"backend": "cgroup3"}, "backend"),
    ({"recap_top": "many"}, "recap_top"),
    ({"sort": "colour"}, "sort"),
    ({"outputs": "records,pdf"}, "outputs"),
    ({"base_group": "perfstats-does-not-exist"}, "base group"),
    ({"output_dir": "/proc/perfstats-cannot-write-here"}, "output_dir"),
]


@pytest.mark.parametrize(("settings", "named"), BAD_OPTIONS, ids=[n for _s, n in BAD_OPTIONS])
def test_bad_option_warns_once_and_changes_nothing(harness, settings, named):
    playbook = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n"
    plain = harness.run(playbook, enabled=False)
    run = harness.run(playbook, settings=settings)
    assert run.rc == plain.rc == 0
    warnings = [line for line in run.stderr.splitlines() if "[WARNING]" in line]
    assert len(warnings) == 1, run.stderr
    assert named in warnings[0]
    assert run.before_recap() == plain.normalized(plain.stdout)
    assert "PERFSTATS RECAP" in run.stdout  # a documented fallback, still profiled


def test_dormant_switch_and_env_override(harness):
    playbook = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n"
    plain = harness.run(playbook, enabled=False)
    dormant = harness.run(playbook, settings={"enabled": "false"})
    assert dormant.rc == 0 and dormant.normalized(dormant.stdout) == plain.normalized(plain.stdout)
    assert dormant.run_dirs() == [] and dormant.stderr == ""
    woken = harness.run(playbook, settings={"enabled": "false"}, env={"PERFSTATS_ENABLED": "true"})
    assert "PERFSTATS RECAP" in woken.stdout
    config = woken.summary()["config"]
    assert config["enabled"]["value"] is True and "PERFSTATS_ENABLED" in config["enabled"]["origin"]
    assert config["sample_interval"]["origin"] == "default"
    assert config["output_dir"]["origin"].startswith("ini")


def test_configuration_is_read_once_per_run(harness):
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: first
          ansible.builtin.command: sleep 3
        - name: second
          ansible.builtin.debug: {msg: after}
    """
    proc, workdir, output_dir = harness.run(playbook, background=True, settings={"sort": "duration", "recap_top": "1"})
    time.sleep(1.5)  # the run is inside its first task now
    cfg = workdir / "ansible.cfg"
    cfg.write_text(
        cfg.read_text().replace("sort = duration", "sort = memory\nenabled = false").replace("recap_top = 1", "recap_top = 5")
    )
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "top 1 tasks by duration" in stdout
    runs = sorted(output_dir.iterdir())
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["config"]["sort"]["value"] == "duration" and summary["config"]["enabled"]["value"] is True


def test_interrupted_run_keeps_its_records_and_removes_its_groups(harness):
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: quick
          ansible.builtin.debug: {msg: one}
        - name: long
          ansible.builtin.command: sleep 37
        - name: never
          ansible.builtin.debug: {msg: two}
    """
    results = {}
    for enabled in (False, True):
        proc, _workdir, output_dir = harness.run(playbook, background=True, enabled=enabled)
        deadline = time.monotonic() + 60
        # Wait until the long task is running (its module's sleep exists).
        while time.monotonic() < deadline:
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False).stdout.split()
            if children and subprocess.run(["pgrep", "-f", "^sleep 37$"], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        results[enabled] = (proc.returncode, output_dir)
        subprocess.run(["pkill", "-f", "^sleep 37$"], check=False)  # this test's own task
    assert results[True][0] == results[False][0]
    runs = sorted(results[True][1].iterdir())
    records = [json.loads(line) for line in (runs[0] / "records.jsonl").read_text().splitlines()]
    assert "quick" in [r["task_name"] for r in records if r["scope"] == "task"]
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["complete"] is False


def test_an_internal_failure_stops_profiling_not_the_run(harness, tmp_path):
    """A full disk under the output directory: one warning, the run's outcome unchanged."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(small)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (%s): no way to fill a disk for real" % mounted.stderr.strip())
    try:
        playbook = (
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
            + "".join(
                "    - name: task %d with a fairly long name to fill the disk sooner\n      ansible.builtin.set_fact: {x%d: 1}\n"
                % (i, i)
                for i in range(60)
            )
            + "    - ansible.builtin.fail: {msg: the real outcome}\n"
        )
        plain = harness.run(playbook, enabled=False)
        run = harness.run(playbook, settings={"output_dir": str(small), "outputs": "records,csv"})
        assert run.rc == plain.rc == 2
        warnings = [line for line in run.stderr.splitlines() if "[WARNING]" in line]
        assert len(warnings) == 1 and "profiling stopped" in warnings[0], run.stderr
        assert run.normalized(run.stdout) == plain.normalized(plain.stdout)
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_recap_lists_top_tasks_in_the_chosen_order(harness):
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: warm-up
          ansible.builtin.command: "true"
        - name: short
          ansible.builtin.command: "true"
        - name: long
          ansible.builtin.command: sleep 2
        - name: medium
          ansible.builtin.command: sleep 1.2
    """
    run = harness.run(playbook, settings={"sort": "duration", "recap_top": "2"})
    recap = run.stdout[run.stdout.index("PERFSTATS RECAP") :]
    assert "top 2 tasks by duration" in recap
    rows = [line.split()[0] for line in recap.splitlines() if re.match(r"^\s+(warm-up|short|long|medium)\s", line)]
    assert rows == ["long", "medium"]
    assert os.stat(run.run_dir).st_mode & 0o077 == 0
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in run.run_dir.iterdir())


def test_each_playbook_of_one_command_is_its_own_run(harness):
    """Ansible closes each playbook with its own PLAY RECAP; each is one profiled run."""
    head = "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
    second = head + "    - name: in the second\n      ansible.builtin.debug: {msg: two}\n"
    playbook = head + "    - name: in the first\n      ansible.builtin.debug: {msg: one}\n"
    run = harness.run(playbook, files={"second.yml": second}, args=["second.yml"])
    assert run.rc == 0, run.stderr
    dirs = run.run_dirs()
    assert len(dirs) == 2
    names = [[json.loads(line)["task_name"] for line in (d / "records.jsonl").read_text().splitlines()] for d in dirs]
    assert sorted(sorted(set(n)) for n in names) == [["in the first"], ["in the second"]]
    assert run.stdout.count("PLAY RECAP") == run.stdout.count("PERFSTATS RECAP") == 2


def test_check_mode_and_csv(harness):
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: would change
          ansible.builtin.copy: {content: "x", dest: "{{ playbook_dir }}/never-written"}
        - name: reads
          ansible.builtin.command: "true"
          check_mode: false
    """
    plain = harness.run(playbook, enabled=False, args=["--check"])
    run = harness.run(playbook, args=["--check"], settings={"outputs": "records,summary,csv"})
    assert run.rc == plain.rc == 0
    assert run.before_recap() == plain.normalized(plain.stdout)
    assert not (run.workdir / "never-written").exists()
    rows = (run.run_dir / "tasks.csv").read_text().splitlines()
    assert rows[0].startswith("seq,task_uuid,task_name")
    assert [row.split(",")[2] for row in rows[1:]] == ["would change", "reads"]
    assert not (run.run_dir / "series.csv").exists()  # only the outputs asked for
