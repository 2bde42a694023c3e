#!/usr/bin/env python
"""What does profiling cost, and does it tell the truth?

Runs real ``ansible-playbook`` processes against localhost and writes
``docs/benchmarks.md`` (or ``--out``):

1. Overhead: wall and CPU seconds of the whole ansible-playbook process tree
   (``os.wait4`` of the child: its own usage plus every descendant it reaped)
   of the same playbook without profiling and with it, runs alternated in
   rounds, median and min-max of each round's ratio to the round's unprofiled
   run.  The anchor ``ansible.posix.cgroup_perf_recap`` (inside a cgroup v1
   group made for it) and ``ansible.posix.profile_tasks`` run in the same
   rounds.
2. Fidelity: tasks with known loads (CPU burns, memory holds, a memory spike
   shorter than 50 ms, process fan-outs) measured by every backend available
   here and by the anchor, reported next to what is known.
3. Footprint: peak RSS of the controller with and without profiling for the
   1,000-task playbook, and the size of the files a run writes.

Usage: .venv/bin/python benchmarks/bench.py [--quick] [--out PATH] [--json PATH]

``--quick`` is a smoke test of a couple of minutes (fewer rounds, smaller
playbooks); its figures are not fit for the committed document, which is
written only by a full run unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUILD = REPO / "build" / "bench"
ANCHOR_VENV = BUILD / "anchor-venv"
# The anchor comes from the community package; only its ansible.posix is used,
# with the same ansible-core as every other run (hence --no-deps).
ANCHOR_PACKAGE = "ansible==12.3.0"
CALLBACK = "perfstats.profiler.profile_resources"
ANCHOR = "ansible.posix.cgroup_perf_recap"
PROFILE_TASKS = "ansible.posix.profile_tasks"
MIB = 1024 * 1024
DOC = REPO / "docs" / "benchmarks.md"


# --------------------------------------------------------------------------
# Preparation: the collection, the anchor, the cgroup layout
# --------------------------------------------------------------------------


def _quiet(cmd: list[str], **kwargs: Any) -> str:
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise SystemExit("failed: %s\n%s%s" % (" ".join(cmd), done.stdout, done.stderr))
    return done.stdout


def install_collection() -> Path:
    """Build this checkout and install it (with ansible.posix beside it)."""
    dist = BUILD / "dist"
    collections = BUILD / "collections"
    shutil.rmtree(dist, ignore_errors=True)
    shutil.rmtree(collections, ignore_errors=True)
    dist.mkdir(parents=True)
    _quiet([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(dist), str(REPO)])
    tarball = next(dist.glob("perfstats-profiler-*.tar.gz"))
    _quiet([str(BIN / "ansible-galaxy"), "collection", "install", "--force", "--offline", "-p", str(collections), str(tarball)])
    posix = anchor_posix_dir()
    (collections / "ansible_collections" / "ansible").mkdir(parents=True, exist_ok=True)
    (collections / "ansible_collections" / "ansible" / "posix").symlink_to(posix)
    sys.path.insert(0, str(collections))
    return collections


def anchor_posix_dir() -> Path:
    """ansible.posix from the community package, in a venv of its own."""
    python = ANCHOR_VENV / "bin" / "python"
    found = sorted(ANCHOR_VENV.glob("lib/python*/site-packages/ansible_collections/ansible/posix"))
    if not found:
        print("installing %s (for ansible.posix only) into %s" % (ANCHOR_PACKAGE, ANCHOR_VENV), flush=True)
        _quiet([sys.executable, "-m", "venv", str(ANCHOR_VENV)])
        _quiet([str(python), "-m", "pip", "install", "--quiet", "--no-deps", ANCHOR_PACKAGE])
        found = sorted(ANCHOR_VENV.glob("lib/python*/site-packages/ansible_collections/ansible/posix"))
    return found[0]


def posix_version() -> str:
    manifest = anchor_posix_dir() / "MANIFEST.json"
    return json.loads(manifest.read_text())["collection_info"]["version"]


def own_layout() -> Any:
    from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups

    return _cgroups.detect_layout()


class AnchorGroup:
    """The v1 group cgroup_perf_recap needs, made beneath our own groups.

    The anchor reads ``/sys/fs/cgroup/<controller>/<control_group>/<file>``
    with one ``control_group`` for all three controllers, which assumes the
    group has the same path in each hierarchy.  Here the memory hierarchy
    puts this process in a nested group while cpuacct and pids put it at the
    root, and groups may only be made beneath one's own group.  So the group
    is made beneath our own group in each hierarchy, and the anchor is given
    a ``control_group`` that climbs out of ``/sys/fs/cgroup/<controller>`` into
    a directory of symbolic links, one per file it reads, each pointing at
    that file in the right hierarchy.  What the anchor measures is unchanged.

    Named ``perfstats-run-<pid>-anchor`` so that leak checks of concurrent
    test runs treat it as the group of a live run; removed on every path.
    """

    FILES = {
        "memory": ("memory.max_usage_in_bytes", "memory.usage_in_bytes"),
        "cpuacct": ("cpuacct.usage",),
        "pids": ("pids.current",),
    }

    def __init__(self, layout: Any) -> None:
        self.name = "perfstats-run-%d-anchor" % os.getpid()
        self.dirs: dict[str, Path] = {}
        self.links = BUILD / ("anchor-links-%d" % os.getpid())
        self.problem = ""
        for controller in self.FILES:
            hierarchy = layout.v1(controller)
            if hierarchy is None or not hierarchy.own_dir:
                self.problem = "no cgroup v1 %s hierarchy here" % controller
                return
            self.dirs[controller] = Path(hierarchy.own_dir) / self.name

    @property
    def control_group(self) -> str:
        # /sys/fs/cgroup/<controller>/../../../.. is /
        return "../../../.." + str(self.links)

    def __enter__(self) -> AnchorGroup:
        if self.problem:
            return self
        try:
            shutil.rmtree(self.links, ignore_errors=True)
            self.links.mkdir(parents=True)
            for controller, path in self.dirs.items():
                path.mkdir()
                for name in self.FILES[controller]:
                    (self.links / name).symlink_to(path / name)
        except OSError as exc:
            self.problem = "cannot make the anchor's group: %s" % exc
            self.close()
        return self

    def join(self) -> None:
        """In the child, before exec: enter the group in every hierarchy."""
        for path in self.dirs.values():
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        for path in self.dirs.values():
            for _i in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)  # the last process is still leaving
            else:
                print("WARNING: could not remove %s" % path, file=sys.stderr)
        shutil.rmtree(self.links, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------
# One run of ansible-playbook, measured from outside
# --------------------------------------------------------------------------


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    user_s: float
    system_s: float
    tree_maxrss_kib: int
    main_hwm_kib: int
    rc: int
    stdout: str
    main_cpu_s: float = 0.0  # the ansible-playbook process alone (all its threads), children excluded
    output_bytes: int = 0
    records_bytes: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _own_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), children left out.

    Read while the exited process is still a zombie: its own times are final
    and the reaped children's are kept apart (``cutime``/``cstime``).
    """
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm(pid: int) -> int:
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Variant:
    """One way of running the same playbook."""

    label: str
    callbacks: tuple[str, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    anchor: bool = False
    rounds: int = 0  # in how many of a scenario's rounds it runs (0: all)


OFF = Variant("off")


class Workspace:
    def __init__(self, base: Path, collections: Path, anchor: AnchorGroup | None) -> None:
        self.base = base
        self.collections = collections
        self.anchor = anchor
        self.count = 0

    def run(
        self,
        playbook: str,
        variant: Variant,
        *,
        inventory: str = "",
        defaults: dict[str, str] | None = None,
        keep_records: bool = False,
    ) -> Measured:
        self.count += 1
        work = self.base / ("run%04d" % self.count)
        work.mkdir(parents=True)
        out = work / "perfstats-out"
        (work / "site.yml").write_text(playbook)
        (work / "inventory.ini").write_text(
            inventory or "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable
        )
        lines = ["[defaults]", "inventory = inventory.ini", "retry_files_enabled = false", "interpreter_python = auto_silent"]
        lines += ["%s = %s" % item for item in (defaults or {}).items()]
        if variant.callbacks:
            lines.append("callbacks_enabled = %s" % ",".join(variant.callbacks))
        lines += ["", "[callback_profile_resources]", "output_dir = %s" % out]
        lines += ["%s = %s" % item for item in variant.settings.items()]
        if variant.anchor and self.anchor is not None:
            lines += ["", "[callback_cgroup_perf_recap]", "control_group = %s" % self.anchor.control_group]
        (work / "ansible.cfg").write_text("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PERFSTATS_", "CGROUP_"))}
        env.update(
            ANSIBLE_CONFIG=str(work / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
            ANSIBLE_NOCOLOR="1",
            PYTHONWARNINGS="ignore",
        )
        join = self.anchor.join if (variant.anchor and self.anchor is not None) else None
        stdout_path = work / "stdout.txt"
        with open(stdout_path, "w") as stdout:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [str(BIN / "ansible-playbook"), "site.yml"],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                preexec_fn=join,  # noqa: PLW1509 - only writes the child's pid into cgroup.procs
            )
            hwm = [0]
            done = threading.Event()

            def watch() -> None:
                while not done.wait(0.25):
                    hwm[0] = max(hwm[0], _vm_hwm(proc.pid))

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            # wait for the exit without reaping, to read the process's own CPU first
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - started
            main_cpu = _own_cpu_s(proc.pid)
            _pid, status, usage = os.wait4(proc.pid, 0)
            done.set()
            watcher.join()
            proc.returncode = os.waitstatus_to_exitcode(status)
        text = stdout_path.read_text()
        measured = Measured(
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            user_s=usage.ru_utime,
            system_s=usage.ru_stime,
            tree_maxrss_kib=usage.ru_maxrss,
            main_hwm_kib=hwm[0],
            rc=proc.returncode,
            main_cpu_s=main_cpu,
            stdout=text,
        )
        if out.is_dir():
            files = [p for p in out.rglob("*") if p.is_file()]
            measured.output_bytes = sum(p.stat().st_size for p in files)
            measured.records_bytes = sum(p.stat().st_size for p in files if p.name == "records.jsonl")
            for path in files:
                if path.name == "records.jsonl" and keep_records:
                    measured.records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
                elif path.name == "summary.json":
                    summary = json.loads(path.read_text())
                    measured.summary = {k: summary.get(k) for k in ("samples", "profiler_cpu_s", "tasks", "backend")}
        if proc.returncode != 0 or "[WARNING]" in text:
            raise SystemExit("run %s (%s) failed or warned:\n%s" % (work, variant.label, text[-4000:]))
        shutil.rmtree(work, ignore_errors=True)
        return measured


# --------------------------------------------------------------------------
# Playbooks
# --------------------------------------------------------------------------


def cheap_playbook(tasks: int) -> str:
    lines = ["- hosts: localhost", "  gather_facts: false", "  tasks:"]
    for index in range(tasks):
        if index % 2 == 0:
            lines += ["    - name: command %d" % index, "      ansible.builtin.command: 'true'"]
        else:
            lines += ["    - name: fact %d" % index, "      ansible.builtin.set_fact:", "        bench_value: %d" % index]
    return "\n".join(lines) + "\n"


def hosts_playbook() -> str:
    return textwrap.dedent(
        """\
        - hosts: all
          gather_facts: false
          tasks:
            - name: command on every host
              ansible.builtin.command: 'true'
        """
    )


def hosts_inventory(count: int) -> str:
    rows = ["h%03d ansible_host=127.0.0.1" % i for i in range(1, count + 1)]
    return "[all:vars]\nansible_connection=local\nansible_python_interpreter=%s\n\n[bench]\n%s\n" % (
        sys.executable,
        "\n".join(rows),
    )


def _py(code: str) -> str:
    return "ansible.builtin.command:\n        argv: ['%s', '-c', %s]" % (sys.executable, json.dumps(code))


def burn_code(seconds: float) -> str:
    return "import time\nend = time.process_time() + %r\nwhile time.process_time() < end:\n    pass\n" % seconds


def sleep_code(seconds: float) -> str:
    return "import time\ntime.sleep(%r)\n" % seconds


def hold_code(mib: int, seconds: float) -> str:
    # bytes * n writes every page, so all of it is resident
    return "import time\nb = b'x' * (%d * 1024 * 1024)\ntime.sleep(%r)\n" % (mib, seconds)


def spike_code(mib: int, report: Path) -> str:
    # allocate, touch, free; then sit idle so a window of the right length exists
    return (
        "import time\nt = time.monotonic()\nb = b'x' * (%d * 1024 * 1024)\ndel b\n"
        "open(%r, 'a').write('%%f\\n' %% (time.monotonic() - t))\ntime.sleep(0.6)\n"
    ) % (mib, str(report))


@dataclass
class Load:
    name: str  # the task's name, unique in the playbook
    label: str  # the row it belongs to (repetitions share it)
    kind: str  # burn, sleep, idle, hold, spike, fanout
    amount: float  # CPU seconds, MiB or processes
    task: str


SPIKE_MIB = 48


def fidelity_loads(burns: list[float], pairs: int, spike_report: Path) -> list[Load]:
    loads = [Load("warm-up", "warm-up", "idle", 0.0, _py("pass"))]
    for rep in range(1, pairs + 1):
        for seconds in burns:
            label = "burn %.2f s" % seconds
            loads.append(Load("sleep %.2f s #%d" % (seconds, rep), label, "sleep", seconds, _py(sleep_code(seconds))))
            loads.append(Load("%s #%d" % (label, rep), label, "burn", seconds, _py(burn_code(seconds))))
    loads += [
        Load("idle 1.2 s", "idle 1.2 s", "idle", 1.2, _py(sleep_code(1.2))),
        Load("hold 100 MiB", "hold 100 MiB", "hold", 100, _py(hold_code(100, 1.2))),
        Load("hold 300 MiB", "hold 300 MiB", "hold", 300, _py(hold_code(300, 1.2))),
        Load(
            "spike %d MiB" % SPIKE_MIB, "spike %d MiB" % SPIKE_MIB, "spike", SPIKE_MIB, _py(spike_code(SPIKE_MIB, spike_report))
        ),
        Load(
            "fan-out 30 x 1 s",
            "fan-out 30 x 1 s",
            "fanout",
            30,
            "ansible.builtin.shell: 'for i in $(seq 30); do sleep 1 & done; wait'",
        ),
        Load(
            "fan-out 40 x 20 ms",
            "fan-out 40 x 20 ms",
            "fanout",
            40,
            "ansible.builtin.shell: 'for i in $(seq 40); do sleep 0.02 & done; wait'",
        ),
    ]
    return loads


def loads_playbook(loads: list[Load]) -> str:
    lines = ["- hosts: localhost", "  gather_facts: false", "  tasks:"]
    for load in loads:
        lines += ["    - name: %s" % json.dumps(load.name), "      " + load.task]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The anchor's recap, read back from stdout
# --------------------------------------------------------------------------

_ANCHOR_ROW = re.compile(r"^(?P<task>.*) \([0-9a-f-]+\): (?P<value>[0-9.]+)(?P<unit>MB|%|)$")


def parse_anchor(stdout: str) -> dict[str, dict[str, float]]:
    """{feature: {task name: value}} from cgroup_perf_recap's recap."""
    found: dict[str, dict[str, float]] = {}
    section = ""
    start = stdout.find("CGROUP PERF RECAP")
    for raw in stdout[start:].splitlines() if start >= 0 else []:
        line = raw.rstrip()
        if line in ("memory:", "cpu:", "pids:"):
            section = line[:-1]
            continue
        match = _ANCHOR_ROW.match(line)
        if section and match:
            found.setdefault(section, {})[match.group("task")] = float(match.group("value"))
    return found


# --------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    title: str
    playbook: str
    inventory: str = ""
    defaults: dict[str, str] = field(default_factory=dict)
    tasks: int = 0


def ratio_stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_overhead(ws: Workspace, scenario: Scenario, variants: list[Variant], rounds: int, warm: bool) -> dict[str, Any]:
    """Rounds of every variant; each round's figures over its own unprofiled run."""
    runs: dict[str, list[Measured]] = {v.label: [] for v in variants}
    if warm:
        ws.run(scenario.playbook, OFF, inventory=scenario.inventory, defaults=scenario.defaults)  # warms caches, not counted
    for index in range(rounds):
        taking = [v for v in variants if not v.rounds or index < v.rounds]
        order = taking if index % 2 == 0 else list(reversed(taking))
        for variant in order:
            measured = ws.run(scenario.playbook, variant, inventory=scenario.inventory, defaults=scenario.defaults)
            measured.stdout = ""
            runs[variant.label].append(measured)
            print(
                "  %-14s round %d/%d  %-22s wall %7.2fs  cpu %7.2fs  controller %6.2fs  maxrss %6.1f MiB"
                % (
                    scenario.key,
                    index + 1,
                    rounds,
                    variant.label,
                    measured.wall_s,
                    measured.cpu_s,
                    measured.main_cpu_s,
                    measured.tree_maxrss_kib / 1024,
                ),
                flush=True,
            )
    off = runs[OFF.label]
    result: dict[str, Any] = {"title": scenario.title, "rounds": rounds, "tasks": scenario.tasks, "variants": {}}
    for variant in variants:
        mine = runs[variant.label]
        result["variants"][variant.label] = {
            "runs": len(mine),
            "samples": ratio_stats([float(m.summary.get("samples") or 0) for m in mine]),
            "profiler_cpu_s": ratio_stats([float(m.summary.get("profiler_cpu_s") or 0) for m in mine]),
            "wall_s": ratio_stats([m.wall_s for m in mine]),
            "cpu_s": ratio_stats([m.cpu_s for m in mine]),
            "wall_ratio": ratio_stats([m.wall_s / o.wall_s for m, o in zip(mine, off)]),
            "cpu_ratio": ratio_stats([m.cpu_s / o.cpu_s for m, o in zip(mine, off)]),
            "main_cpu_s": ratio_stats([m.main_cpu_s for m in mine]),
            # what the variant added to the controller process's own CPU in its round,
            # as a share of that round's whole unprofiled run
            "main_added_share": ratio_stats([(m.main_cpu_s - o.main_cpu_s) / o.cpu_s for m, o in zip(mine, off)]),
            "tree_maxrss_mib": ratio_stats([m.tree_maxrss_kib / 1024 for m in mine]),
            "main_hwm_mib": ratio_stats([m.main_hwm_kib / 1024 for m in mine]),
            "output_bytes": ratio_stats([float(m.output_bytes) for m in mine]),
            "records_bytes": ratio_stats([float(m.records_bytes) for m in mine]),
        }
    return result


MAIN = ("off", "ours 50 ms", "ours 20 ms")
OTHERS = ("profile_tasks", "cgroup_perf_recap")


def variant_set(plan: dict[str, int]) -> list[Variant]:
    every = [
        OFF,
        Variant("ours 50 ms", (CALLBACK,), {"sample_interval": "0.05"}),
        Variant("ours 20 ms", (CALLBACK,), {"sample_interval": "0.02"}),
        Variant("profile_tasks", (PROFILE_TASKS,)),
        Variant("cgroup_perf_recap", (ANCHOR,), anchor=True),
    ]
    chosen = []
    for variant in every:
        if plan.get(variant.label):
            variant.rounds = plan[variant.label]
            chosen.append(variant)
    return chosen


def overhead_plan(quick: bool, rounds: int) -> list[tuple[Scenario, dict[str, int]]]:
    """Playbooks and how many rounds each variant gets.

    The default budget gives ``off`` and both of our variants five rounds
    of every playbook (five pairs each), and the anchors five rounds of the
    100-task playbook and fewer of the slower ones; on a two-core machine,
    where a cheap command task costs the controller about 0.15 s, that is
    a little over an hour.  ``--rounds N`` gives every variant N rounds
    everywhere.
    """

    def plan(others: int) -> dict[str, int]:
        if rounds:
            return {label: rounds for label in MAIN + OTHERS}
        counts = {label: 2 if quick else 5 for label in MAIN}
        counts.update({label: others for label in OTHERS})
        return counts

    hosts_defaults = {"forks": "10" if quick else "50"}
    if quick:
        return [
            (Scenario("40 tasks", "40 cheap tasks on localhost", cheap_playbook(40), tasks=40), plan(1)),
            (
                Scenario("20 hosts", "1 task on 20 hosts, forks 10", hosts_playbook(), hosts_inventory(20), hosts_defaults, 1),
                plan(1),
            ),
        ]
    return [
        (Scenario("100 tasks", "100 cheap tasks on localhost", cheap_playbook(100), tasks=100), plan(5)),
        (
            Scenario("200 hosts", "1 task on 200 hosts, forks 50", hosts_playbook(), hosts_inventory(200), hosts_defaults, 1),
            plan(2),
        ),
        (Scenario("1000 tasks", "1,000 cheap tasks on localhost", cheap_playbook(1000), tasks=1000), plan(1)),
    ]


def available_backends(layout: Any) -> dict[str, str]:
    """Backend -> '' when usable here, else why not."""
    from ansible_collections.perfstats.profiler.plugins.module_utils import _cgroups

    found = {}
    for backend in ("auto", "cgroup1", "cgroup2"):
        plan = _cgroups.plan_backend(layout, backend)
        found[backend] = "" if plan.backend != "process" else "; ".join(plan.notes)
    try:
        import psutil  # noqa: F401

        found["process"] = ""
    except ImportError:
        found["process"] = "psutil is not installed"
    return found


def run_fidelity(ws: Workspace, layout: Any, burns: list[float], pairs: int, repeat: int, anchor_ok: bool) -> dict[str, Any]:
    report = ws.base / "spike-durations.txt"
    loads = fidelity_loads(burns, pairs, report)
    playbook = loads_playbook(loads)
    # The controller's own cost of waiting for a result grows with a task's
    # wall time (it polls every millisecond by default); each burn is read
    # against a sleep of the same length, and a slower poll keeps that cost small.
    defaults = {"internal_poll_interval": "0.02"}
    result: dict[str, Any] = {"loads": [asdict(load) | {"task": ""} for load in loads], "backends": {}, "skipped": {}}
    for backend, why in available_backends(layout).items():
        if why:
            result["skipped"][backend] = why
            continue
        per_run = []
        for _i in range(repeat):
            variant = Variant("ours-" + backend, (CALLBACK,), {"backend": backend, "recap": "false"})
            measured = ws.run(playbook, variant, defaults=defaults, keep_records=True)
            tasks = {r["task_name"]: r for r in measured.records if r["scope"] == "task"}
            per_run.append({name: _task_figures(rec) for name, rec in tasks.items()})
            print(
                "  fidelity %-8s backend %s" % (backend, measured.records[0]["backend"] if measured.records else "?"), flush=True
            )
        result["backends"][backend] = {
            "runs": per_run,
            "reported_backend": measured.records[0]["backend"] if measured.records else "",
        }
    if anchor_ok:
        per_run = []
        for _i in range(repeat):
            measured = ws.run(playbook, Variant("anchor", (ANCHOR,), anchor=True), defaults=defaults)
            per_run.append(parse_anchor(measured.stdout))
            print("  fidelity anchor", flush=True)
        result["anchor"] = {"runs": per_run}
    if report.exists():
        result["spike_alive_s"] = [float(x) for x in report.read_text().split()]
    return result


def run_micro(collections: Path, layout: Any, windows: int) -> dict[str, Any]:
    """The profiler's own cost per window and per sample, for every backend here."""
    found: dict[str, Any] = {}
    for backend, why in available_backends(layout).items():
        if why:
            continue
        out = _quiet(
            [sys.executable, str(Path(__file__).resolve().parent / "window_cost.py"), str(collections), backend, str(windows)]
        )
        found[backend] = json.loads(out.strip().splitlines()[-1])
        print("  micro %-8s %s" % (backend, found[backend]), flush=True)
    return found


def _task_figures(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("cpu_total_s", "memory_peak_bytes", "memory_peak_exact", "pids_peak", "pids_peak_exact", "duration_s", "cpu_pct_max")
    return {k: record.get(k) for k in keys}


# --------------------------------------------------------------------------
# The machine, and whether it is quiet
# --------------------------------------------------------------------------


def load_average() -> float:
    return os.getloadavg()[0]


def others_running() -> list[str]:
    """Other pytest or ansible processes (not ours) running right now."""
    mine = {os.getpid()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if re.search(r"pytest|ansible-playbook|ansible-test", cmdline) and "benchmarks/bench.py" not in cmdline:
            found.append("%s: %s" % (entry.name, cmdline[:100]))
    return found


def machine(layout: Any) -> dict[str, Any]:
    import ansible

    try:
        import psutil

        psutil_version = psutil.__version__
    except ImportError:
        psutil_version = "not installed"
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    version = re.search(r"^version:\s*(\S+)", (REPO / "galaxy.yml").read_text(), re.M)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "cgroup_mode": layout.mode,
        "hierarchies": ["%s %s (own group %s)" % ("v%d" % h.version, h.key, h.own_path) for h in layout.hierarchies],
        "python": platform.python_version(),
        "ansible_core": ansible.__version__ if hasattr(ansible, "__version__") else _ansible_core_version(),
        "psutil": psutil_version,
        "ansible_posix": posix_version(),
        "anchor_package": ANCHOR_PACKAGE,
        "collection": version.group(1) if version else "?",
        "commit": commit,
    }


def _ansible_core_version() -> str:
    from ansible.release import __version__

    return __version__


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def wait_for_quiet(max_wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + max_wait
    while True:
        load, others = load_average(), others_running()
        if load < 0.5 and not others:
            return {"quiet": True, "load_at_start": load, "others_at_start": []}
        if time.monotonic() >= deadline:
            return {"quiet": False, "load_at_start": load, "others_at_start": others}
        print("waiting for a quiet machine: load %.2f, %d other runs" % (load, len(others)), flush=True)
        time.sleep(min(60.0, max(1.0, deadline - time.monotonic())))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


@contextlib.contextmanager
def signals_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the anchor's group is removed."""

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test of a couple of minutes")
    parser.add_argument(
        "--out", type=Path, help="markdown to write (default: docs/benchmarks.md for a full run, none for --quick)"
    )
    parser.add_argument("--json", type=Path, help="raw results as JSON (default: build/bench/results[-quick].json)")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="SECONDS", help="wait up to this long for load < 0.5 and no other runs"
    )
    parser.add_argument("--only", default="overhead,fidelity,micro", help="comma-separated: overhead, fidelity, micro")
    parser.add_argument("--add-to", type=Path, metavar="JSON", help="add the parts run now to earlier raw results")
    parser.add_argument(
        "--rounds", type=int, default=0, help="rounds of every variant in every overhead playbook (default: the budget below)"
    )
    parser.add_argument("--render", type=Path, metavar="JSON", help="only write the markdown again from raw results")
    args = parser.parse_args(argv)
    from render import render  # benchmarks/render.py beside this file

    if args.render:
        (args.out or DOC).write_text(render(json.loads(args.render.read_text())))
        return 0
    quick = args.quick
    out = args.out or (None if quick else DOC)
    raw = args.json or BUILD / ("results-quick.json" if quick else "results.json")
    parts = set(args.only.split(","))

    BUILD.mkdir(parents=True, exist_ok=True)
    collections = install_collection()
    layout = own_layout()
    quiet = wait_for_quiet(args.wait_quiet)
    results: dict[str, Any] = {"machine": machine(layout), "quiet": quiet, "quick": quick}
    given = sys.argv[1:] if argv is None else argv
    results["command"] = " ".join([".venv/bin/python benchmarks/bench.py", *given])
    if args.add_to:
        earlier = json.loads(args.add_to.read_text())
        earlier["command"] = "%s; then %s" % (earlier["command"], results["command"])
        earlier["quiet"]["later"] = quiet
        results = earlier
        raw = args.add_to
    started = time.monotonic()
    with signals_as_exit(), tempfile.TemporaryDirectory(prefix="perfstats-bench-") as tmp, AnchorGroup(layout) as anchor:
        anchor_ok = not anchor.problem
        results["anchor_problem"] = anchor.problem
        ws = Workspace(Path(tmp), collections, anchor if anchor_ok else None)
        if "overhead" in parts:
            results["overhead"] = {}
            for scenario, plan in overhead_plan(quick, args.rounds):
                variants = [v for v in variant_set(plan) if anchor_ok or not v.anchor]
                print("overhead: %s" % scenario.title, flush=True)
                first = not results["overhead"]
                results["overhead"][scenario.key] = run_overhead(ws, scenario, variants, max(plan.values()), warm=first)
        if "fidelity" in parts:
            print("fidelity", flush=True)
            burns = [0.1, 1.0] if quick else [0.05, 0.2, 1.0, 2.0]
            results["fidelity"] = run_fidelity(ws, layout, burns, 1 if quick else 3, 1, anchor_ok)
        if "micro" in parts:
            print("profiler's own cost", flush=True)
            results["micro"] = run_micro(collections, layout, 100 if quick else 500)
    results["elapsed_s"] = results.get("elapsed_s", 0.0) + time.monotonic() - started
    results["quiet"]["load_at_end"] = load_average()
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results, indent=1, default=str))
    print("raw results: %s" % raw)
    text = render(results)
    if out:
        out.write_text(text)
        print("wrote %s" % out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
