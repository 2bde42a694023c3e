"""A real ansible-playbook run with the callback: the recap and the outcome."""

from __future__ import annotations

import re

from harness import python_burn

KNOWN_LOADS = """
- hosts: localhost
  gather_facts: false
  tasks:
    # The first task of a run also pays one-time costs (loading plugins);
    # the baseline is the same command as the burn without the burn.
    - name: warm-up
      ansible.builtin.command: "{{ ansible_playbook_python }} -c pass"
    - name: baseline
      ansible.builtin.command: "{{ ansible_playbook_python }} -c pass"
    - name: burn
      %s
    - name: hold
      ansible.builtin.command: >-
        {{ ansible_playbook_python }} -c "import time; b = bytearray(200 * 1024 * 1024); time.sleep(0.3)"
    - name: fanout
      ansible.builtin.shell: "for i in $(seq 30); do sleep 0.5 & done; wait"
""" % python_burn(1.0).replace("\n", "\n      ")

MIB = 1024 * 1024


def _recap_row(stdout: str, task: str) -> list[str]:
    for line in stdout.splitlines():
        if line.strip().startswith(task + " "):
            return line.split()
    raise AssertionError("no recap row for %s in:\n%s" % (task, stdout))


def test_recap_figures_follow_known_loads(harness):
    run = harness.run(KNOWN_LOADS, settings={"recap_top": "10"})
    assert run.rc == 0, run.stderr
    assert "PERFSTATS RECAP" in run.stdout
    recap = run.stdout[run.stdout.index("PERFSTATS RECAP") :]
    assert run.stdout.index("PLAY RECAP") < run.stdout.index("PERFSTATS RECAP")
    tasks = run.tasks()
    # CPU: the burn costs one second more than the same module without it.
    extra = tasks["burn"]["cpu_total_s"] - tasks["baseline"]["cpu_total_s"]
    assert abs(extra - 1.0) <= max(0.05, 0.05 * 1.0), tasks
    # The recap prints the same figure the record holds (two decimals).
    assert _recap_row(recap, "burn")[1] == "%.2f" % tasks["burn"]["cpu_total_s"]
    # Memory: the hold task's peak covers the allocation.
    assert tasks["hold"]["memory_peak_bytes"] >= 200 * MIB
    assert tasks["hold"]["memory_peak_bytes"] > 4 * tasks["baseline"]["memory_peak_bytes"]
    # PIDs: thirty sleeps at once.
    assert tasks["fanout"]["pids_peak"] >= 30
    assert tasks["baseline"]["pids_peak"] < 30
    # The recap's run line carries the run maxima.
    assert re.search(r"max PIDs (\d+)", recap) and int(re.search(r"max PIDs (\d+)", recap).group(1)) >= 30


def test_outcome_and_stdout_unchanged_by_the_callback(harness):
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: fine
          ansible.builtin.debug: {msg: hello}
        - name: fails but ignored
          ansible.builtin.command: "false"
          ignore_errors: true
        - name: fails
          ansible.builtin.command: "false"
    """
    plain = harness.run(playbook, enabled=False)
    profiled = harness.run(playbook)
    assert plain.rc == profiled.rc == 2
    assert "PERFSTATS RECAP" in profiled.stdout
    assert profiled.before_recap() == plain.normalized(plain.stdout)
