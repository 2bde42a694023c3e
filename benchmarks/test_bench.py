"""Checks of the benchmark's own parsing and verdicts (no playbook runs).

Run: .venv/bin/python -m pytest benchmarks/test_bench.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402
import render  # noqa: E402

# The end of a real cgroup_perf_recap run (ansible.posix 2.1.0), two tasks.
ANCHOR_STDOUT = """\
PLAY RECAP *********************************************************************
localhost                  : ok=2    changed=2    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0


CGROUP PERF RECAP **************************************************************
Memory Execution Maximum: 181.74MB
cpu Execution Maximum: 71.59%
pids Execution Maximum: 15.00

memory:
hold 100 MiB (02fc0000-0001-82b1-4b14-000000000004): 181.74MB
fan-out 5 x 1 s (02fc0000-0001-82b1-4b14-000000000005): 67.65MB

cpu:
hold 100 MiB (02fc0000-0001-82b1-4b14-000000000004): 71.59%
fan-out 5 x 1 s (02fc0000-0001-82b1-4b14-000000000005): 57.26%

pids:
hold 100 MiB (02fc0000-0001-82b1-4b14-000000000004): 10.00
fan-out 5 x 1 s (02fc0000-0001-82b1-4b14-000000000005): 15.00

"""


def test_anchor_recap_is_read_per_feature_and_task():
    found = bench.parse_anchor(ANCHOR_STDOUT)
    assert found["memory"] == {"hold 100 MiB": 181.74, "fan-out 5 x 1 s": 67.65}
    assert found["cpu"]["fan-out 5 x 1 s"] == 57.26
    assert found["pids"] == {"hold 100 MiB": 10.0, "fan-out 5 x 1 s": 15.0}


def test_no_recap_reads_as_nothing():
    assert bench.parse_anchor("PLAY RECAP ***\nlocalhost : ok=1\n") == {}


def _loads() -> list[dict]:
    loads = bench.fidelity_loads([0.1, 1.0], 2, Path("/nonexistent"))
    return [{"name": x.name, "label": x.label, "kind": x.kind, "amount": x.amount} for x in loads]


def _task(cpu: float = 0.0, mem_mib: float = 0.0, pids: int = 0, exact: bool = True) -> dict:
    return {
        "cpu_total_s": cpu,
        "memory_peak_bytes": int(mem_mib * render.MIB),
        "memory_peak_exact": exact,
        "pids_peak": pids,
        "pids_peak_exact": exact,
    }


def test_burns_are_read_against_their_own_sleeps():
    loads = _loads()
    run = {load["name"]: _task() for load in loads}
    # each sleep costs 0.3 s of waiting; each burn that plus its burn
    for load in loads:
        if load["kind"] in ("sleep", "burn"):
            run[load["name"]] = _task(cpu=0.3 + (load["amount"] if load["kind"] == "burn" else 0.0))
    row = next(x for x in loads if x["label"] == "burn 1.00 s" and x["kind"] == "burn")
    text, ok = render._ours_cell([run], loads, row)
    assert ok is True and text.startswith("1.000 s")
    run["burn 1.00 s #2"] = _task(cpu=0.3 + 1.2)
    run["burn 1.00 s #1"] = _task(cpu=0.3 + 1.2)
    _text, ok = render._ours_cell([run], loads, row)
    assert ok is False


def test_a_spike_must_stand_above_the_idle_task():
    loads = _loads()
    spike = next(x for x in loads if x["kind"] == "spike")
    run = {"idle 1.2 s": _task(mem_mib=100)}
    run[spike["name"]] = _task(mem_mib=110)  # above the allocation only through the baseline
    assert render._ours_cell([run], loads, spike)[1] is False
    run[spike["name"]] = _task(mem_mib=100 + spike["amount"])
    assert render._ours_cell([run], loads, spike)[1] is True


def test_fan_out_below_its_size_is_a_miss():
    loads = _loads()
    fan = next(x for x in loads if x["kind"] == "fanout")
    assert render._ours_cell([{fan["name"]: _task(pids=int(fan["amount"]) - 1, exact=False)}], loads, fan)[1] is False
    assert render._ours_cell([{fan["name"]: _task(pids=int(fan["amount"]) + 8)}], loads, fan)[1] is True


def test_every_variant_of_the_plan_runs_in_its_own_number_of_rounds():
    for quick in (True, False):
        for _scenario, plan in bench.overhead_plan(quick, 0):
            variants = bench.variant_set(plan)
            assert variants[0].label == "off"
            assert max(v.rounds for v in variants) == plan["off"]
    assert all(set(plan.values()) == {5} for _s, plan in bench.overhead_plan(False, 5))


def test_the_full_plan_pairs_each_of_ours_with_off_at_least_five_times():
    for _scenario, plan in bench.overhead_plan(False, 0):
        for label in ("off", "ours 50 ms", "ours 20 ms"):
            assert plan[label] >= 5


def test_own_cpu_is_read_from_a_zombie_before_it_is_reaped():
    import os
    import subprocess
    import sys

    code = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:\n    pass\n"
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', %r])" % code])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    own = bench._own_cpu_s(child.pid)
    _pid, _status, usage = os.wait4(child.pid, 0)
    child.returncode = 0
    tree = usage.ru_utime + usage.ru_stime
    # the grandchild's 0.3 s burn is the tree's, not the parent's own
    assert tree >= 0.3
    assert own < tree - 0.25
