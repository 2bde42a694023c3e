"""A real ansible-playbook run with the callback: the recap and the outcome."""

from __future__ import annotations

from harness import BURN, BURN_TOLERANCE, burn_excess, known_loads_playbook

from ansible_collections.perfstats.profiler.plugins.plugin_utils._recap import human_bytes

MIB = 1024 * 1024


def _recap_row(stdout: str, task: str) -> list[str]:
    for line in stdout.splitlines():
        if line.strip().startswith(task + " "):
            return line.split()
    raise AssertionError("no recap row for %s in:\n%s" % (task, stdout))


def test_recap_figures_follow_known_loads(harness):
    run = harness.run(known_loads_playbook(), settings={"recap_top": "20"}, defaults={"internal_poll_interval": "0.02"})
    assert run.rc == 0, run.stderr
    assert run.stdout.index("PLAY RECAP") < run.stdout.index("PERFSTATS RECAP")
    recap = run.stdout[run.stdout.index("PERFSTATS RECAP") :]
    tasks = run.tasks()
    # CPU: a burn costs BURN seconds more than a task sleeping as long.
    excess, burns, sleeps = burn_excess(tasks)
    assert abs(excess - BURN) <= BURN_TOLERANCE, (burns, sleeps)
    # The recap prints the records' figures, in human units.
    for name in ("burn0", "hold", "fanout"):
        row = _recap_row(recap, name)
        assert row[1] == "%.2f" % tasks[name]["cpu_total_s"]
        assert " ".join(row[3:5]) == human_bytes(tasks[name]["memory_peak_bytes"]) + (
            "" if tasks[name]["memory_peak_exact"] else "~"
        )
        assert row[5].rstrip("~") == str(tasks[name]["pids_peak"])
    assert tasks["hold"]["memory_peak_bytes"] >= 200 * MIB
    assert tasks["fanout"]["pids_peak"] >= 30 > tasks["quiet"]["pids_peak"]
    # The run line carries the run's maxima.
    summary = run.summary()
    assert "max PIDs %d" % summary["pids_peak"] in recap and summary["pids_peak"] >= 30
    assert "max memory %s" % human_bytes(summary["memory_peak_bytes"]) in recap and summary["memory_peak_bytes"] >= 200 * MIB


def test_outcome_and_stdout_unchanged_by_the_callback(harness):
    playbook = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: fine
          ansible.builtin.debug: {msg: hello}
        - name: fails but ignored
          ansible.builtin.fail: {msg: ignored}
          ignore_errors: true
        - name: fails
          ansible.builtin.fail: {msg: the end}
    """
    plain = harness.run(playbook, enabled=False)
    profiled = harness.run(playbook)
    assert plain.rc == profiled.rc == 2
    assert "PERFSTATS RECAP" in profiled.stdout
    assert profiled.before_recap() == plain.normalized(plain.stdout)
