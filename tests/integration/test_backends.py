"""Every backend this machine offers, through real ansible-playbook runs.

Known loads: CPU burns (against a task of the same length that only sleeps, so
the controller's own per-second cost of waiting for a result cancels out), a
memory hold, a memory spike shorter than 50 ms, a process fan-out.
"""

from __future__ import annotations

import time

import pytest
from harness import BURN, BURN_TOLERANCE, REPEAT, burn_excess, indent, known_loads_playbook, python_burn

from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups as cg

MIB = 1024 * 1024
LAYOUT = cg.detect_layout()
BACKENDS = ["auto", "cgroup1", "cgroup2", "process"]


def _available(backend: str) -> str | None:
    if backend == "process":
        try:
            import psutil  # noqa: F401
        except ImportError:
            return "psutil is not installed"
        return None
    plan = cg.plan_backend(LAYOUT, backend)
    if plan.backend == "process":
        return "no usable %s hierarchy here: %s" % (backend, "; ".join(plan.notes))
    return None


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_loads(harness, backend):
    why = _available(backend)
    if why:
        pytest.skip(why)
    kernel = backend != "process"
    # The controller polls for results every millisecond by default, a cost
    # proportional to a task's wall time; a slower poll keeps that cost from
    # depending on how long the burn took on a busy machine.
    run = harness.run(
        known_loads_playbook(),
        settings={"backend": backend, "sample_interval": "1.0" if kernel else "0.02"},
        defaults={"internal_poll_interval": "0.02"},
    )
    assert run.rc == 0, run.stdout + run.stderr
    assert "[WARNING]" not in run.stderr, run.stderr
    summary = run.summary()
    tasks = run.tasks()
    expected = {
        "auto": LAYOUT.mode if LAYOUT.mode != "hybrid" else "hybrid",
        "cgroup1": "cgroup1",
        "cgroup2": "cgroup2",
        "process": "process-tree",
    }
    if backend != "auto":
        assert summary["backend"] == expected[backend]
    print("backend %s: plan %s" % (summary["backend"], summary["plan"]))

    # CPU: each burn costs BURN seconds more than the same-length sleep.
    excess, burns, sleeps = burn_excess(tasks)
    assert abs(excess - BURN) <= BURN_TOLERANCE, (burns, sleeps)

    # Memory: the hold is covered, and not inflated beyond the run's baseline: the
    # largest peak of the tasks that run the same processes without the allocation
    # (with sampled memory, a 0.5 s task may see no sample of its own module).
    hold = tasks["hold"]
    baseline = max(tasks[name]["memory_peak_bytes"] for name in ["quiet"] + ["sleep%d" % i for i in range(REPEAT)])
    assert hold["memory_peak_bytes"] >= 200 * MIB
    assert hold["memory_peak_bytes"] <= 1.10 * (200 * MIB + baseline), (hold, baseline)

    # A spike far shorter than the sample interval: only a kernel peak sees it.
    spike = tasks["spike"]
    if spike["memory_peak_exact"]:
        assert spike["memory_peak_bytes"] >= 150 * MIB, spike
    else:
        assert not kernel or backend == "cgroup2", spike
        print("%s: memory peaks are sampled here, the spike is not asserted" % backend)

    # PIDs: thirty sleeps at once.
    assert tasks["fanout"]["pids_peak"] >= 30
    assert tasks["fanout"]["pids_peak_exact"] == (kernel and summary["exact"]["pids_peak"])


def test_simultaneous_runs_see_only_their_own_load(harness):
    busy = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: burn
          %s
        - name: hold
          ansible.builtin.command: >-
            {{ ansible_playbook_python }} -c 'import time; b = bytearray(300 * 1024 * 1024); time.sleep(2)'
        - name: fanout
          ansible.builtin.shell: "for i in $(seq 40); do sleep 2 & done; wait"
    """ % indent(python_burn(3.0), 10)
    idle = """
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: wait
          ansible.builtin.command: sleep 6
    """
    a_proc, _a_dir, a_out = harness.run(busy, background=True)
    b_proc, _b_dir, b_out = harness.run(idle, background=True)
    a_stdout, a_stderr = a_proc.communicate(timeout=300)
    b_stdout, b_stderr = b_proc.communicate(timeout=300)
    assert a_proc.returncode == 0 and b_proc.returncode == 0, a_stderr + b_stderr
    a = _summary(a_out)
    b = _summary(b_out)
    assert a["cpu_total_s"] >= 3.0
    assert a["memory_peak_bytes"] >= 300 * MIB
    assert a["pids_peak"] >= 40
    # The idle run overlapped all of it and saw none of it.
    assert b["cpu_total_s"] < 1.5, b
    assert b["memory_peak_bytes"] < 150 * MIB, b
    assert b["pids_peak"] < 40, b


def _summary(output_dir):
    import json

    deadline = time.monotonic() + 10
    runs = sorted(p for p in output_dir.iterdir() if p.is_dir())
    assert len(runs) == 1
    path = runs[0] / "summary.json"
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return json.loads(path.read_text())
