#!/usr/bin/env python
# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The version matrix: this collection on every Ansible and Python it claims.

Each row gets a virtualenv of its own (cached under ``build/matrix/<row>/``),
installs one Ansible release from the package index and this collection from
the checkout, and runs real ``ansible-playbook`` against localhost:

* full rows run a playbook with known loads (a CPU burn, a memory hold, a
  process fan-out) and check the exit code, the recap's figures and the
  records; then a playbook whose outcome is a failure, with and without the
  callback, whose exit codes and stdout (up to the recap) must be equal;
* degradation rows (controllers too old to profile) check that the callback
  loads without a traceback, says once at ``-v`` that profiling is
  unavailable and why, and leaves exit code and stdout otherwise unchanged;
* the row without psutil checks that the cgroup backends work without it and
  that asking for the process tree gives one warning and an unchanged run.

Usage: ``run_matrix.py [--ci | --rows ID,...] [--refresh] [--write-docs]``.
Only the standard library is used, so any Python 3.8+ can run it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "matrix"
DOC = REPO / "docs" / "matrix.md"
CALLBACK = "perfstats.profiler.profile_resources"
CGROUP_ROOT = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 600
TABLE_BEGIN = "<!-- matrix-table: begin -->"
TABLE_END = "<!-- matrix-table: end -->"

# Versions of dependencies that still support the old Pythons of the
# degradation rows; the package index does not filter by requires-python.
PY36_PINS = [
    "jinja2==3.0.3",
    "MarkupSafe==2.0.1",
    "PyYAML==6.0.1",
    "cryptography==40.0.2",
    "cffi==1.15.1",
    "pycparser==2.21",
    "packaging==21.3",
    "pyparsing==3.0.9",
    "resolvelib==0.5.4",
]
PY27_PINS = [
    "jinja2==2.11.3",
    "MarkupSafe==1.1.1",
    "PyYAML==5.4.1",
    "cryptography==3.3.2",
    "cffi==1.15.1",
    "pycparser==2.21",
    "six==1.16.0",
    "enum34==1.1.10",
    "ipaddress==1.0.23",
]
# Ansible 2.9 to ansible-core 2.11 predate Jinja2 3.1 (which removed names they import).
OLD_JINJA = ["jinja2<3.1", "MarkupSafe<2.1"]


@dataclass
class Row:
    """One Ansible release on one controller Python."""

    id: str
    ansible: str  # what the row claims, for the table
    python: str  # pyenv version
    packages: list[str]
    kind: str = "full"  # full | degraded | no-psutil
    enable_key: str = "callbacks_enabled"
    psutil: bool = True
    layout: str = "venv"  # venv | target (pip --target, for Python 2.7)
    install_collection: str = "galaxy"  # galaxy (build + install) | copy
    pip_first: list[str] = field(default_factory=list)
    strict_deprecations: bool = False
    ci: bool = False


ROWS = [
    Row(
        "2.9-py3.8",
        "Ansible 2.9",
        "3.8.18",
        ["ansible==2.9.27", *OLD_JINJA],
        enable_key="callback_whitelist",
        install_collection="copy",
        ci=True,
    ),
    Row("2.10-py3.9", "ansible-base 2.10", "3.9.18", ["ansible-base~=2.10.0", *OLD_JINJA], enable_key="callback_whitelist"),
    Row("2.11-py3.9", "ansible-core 2.11", "3.9.18", ["ansible-core~=2.11.0", *OLD_JINJA]),
    Row("2.12-py3.10", "ansible-core 2.12", "3.10.13", ["ansible-core~=2.12.0"]),
    Row("2.13-py3.10", "ansible-core 2.13", "3.10.13", ["ansible-core~=2.13.0"]),
    Row("2.14-py3.11", "ansible-core 2.14", "3.11.7", ["ansible-core~=2.14.0"], ci=True),
    Row("2.15-py3.11", "ansible-core 2.15", "3.11.7", ["ansible-core~=2.15.0"]),
    Row("2.16-py3.12", "ansible-core 2.16", "3.12.1", ["ansible-core~=2.16.0"]),
    Row("2.17-py3.12", "ansible-core 2.17", "3.12.1", ["ansible-core~=2.17.0"]),
    Row("2.18-py3.13", "ansible-core 2.18", "3.13.0", ["ansible-core~=2.18.0"]),
    Row("2.19-py3.13", "ansible-core 2.19", "3.13.0", ["ansible-core~=2.19.0"], strict_deprecations=True, ci=True),
    Row("2.20-py3.12", "ansible-core 2.20", "3.12.1", ["ansible-core~=2.20.0"], strict_deprecations=True),
    Row("2.21-py3.13", "ansible-core 2.21", "3.13.0", ["ansible-core~=2.21.0"], strict_deprecations=True, ci=True),
    Row(
        "2.19-py3.11-no-psutil",
        "ansible-core 2.19, no psutil",
        "3.11.7",
        ["ansible-core~=2.19.0"],
        kind="no-psutil",
        psutil=False,
        strict_deprecations=True,
        ci=True,
    ),
    Row(
        "2.9-py2.7",
        "Ansible 2.9 (pip --target)",
        "2.7.18",
        ["ansible==2.9.27", *PY27_PINS],
        kind="degraded",
        enable_key="callback_whitelist",
        psutil=False,
        layout="target",
        install_collection="copy",
        ci=True,
    ),
    Row(
        "2.11-py3.6",
        "ansible-core 2.11",
        "3.6.15",
        ["ansible-core==2.11.12", *PY36_PINS],
        kind="degraded",
        psutil=False,
        pip_first=["pip==21.3.1"],
        ci=True,
    ),
]

# ----------------------------------------------------------------------------
# playbooks
# ----------------------------------------------------------------------------
INVENTORY = 'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n'

# Known loads. The burn counts its own user+system time with os.times(), so it
# runs on every module Python (2.7 too); the baseline is the same command
# without the loop, so their difference is the burn itself.
BURN_SECONDS = 1.0
# The burn's own second must be counted. Below it: the baseline is a single
# run of a command whose own cost varies by several hundredths of a second
# from task to task (seen: 0.969 once), so the lower bound leaves 0.1 s; the
# per-backend precision is proven by the integration tests with sleeping twins
# and medians. Above it: while a task runs the controller polls for its
# result, which costs CPU in proportion to the task's wall time (seen: 0.00 to
# 0.20 s for this one-second task, more on a busy machine), so the upper bound
# is loose.
BURN_BOUNDS = (0.9 * BURN_SECONDS, 1.5 * BURN_SECONDS)
HOLD_MIB = 200
FANOUT = 30
LOADS = """\
- name: Known loads
  hosts: localhost
  gather_facts: false
  tasks:
    - name: warm-up
      command: "{{ ansible_playbook_python }} -c pass"
      changed_when: false
    - name: baseline
      command: "{{ ansible_playbook_python }} -c pass"
      changed_when: false
    - name: burn
      command:
        argv:
          - "{{ ansible_playbook_python }}"
          - -c
          - |
            import os
            end = sum(os.times()[:2]) + %(burn)s
            while sum(os.times()[:2]) < end:
                pass
      changed_when: false
    - name: hold
      command: >-
        {{ ansible_playbook_python }} -c
        "import time; block = bytearray(%(hold)d * 1024 * 1024); time.sleep(0.3)"
      changed_when: false
    - name: fanout
      shell: "for i in $(seq %(fanout)d); do sleep 0.5 & done; wait"
      changed_when: false
    - name: items
      debug:
        msg: "item {{ item }}"
      loop: [1, 2]
""" % {"burn": BURN_SECONDS, "hold": HOLD_MIB, "fanout": FANOUT}

# Output that is the same on every run (no timestamps, even at -v), ending in
# a failure: the exit code and stdout are compared with and without the callback.
OUTCOME = """\
- name: Outcome
  hosts: localhost
  gather_facts: false
  tasks:
    - name: greet
      debug:
        msg: hello
    - name: loop
      debug:
        msg: "item {{ item }}"
      loop: [1, 2]
    - name: tolerated failure
      fail:
        msg: tolerated
      ignore_errors: true
    - name: set a fact
      set_fact:
        matrix_fact: 1
    - name: failure
      fail:
        msg: stops here
"""
OUTCOME_RC = 2


# ----------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------
class CheckFailed(Exception):
    pass


@dataclass
class Result:
    row: Row
    status: str = "UNTESTED"  # PASS | FAIL | UNTESTED
    version: str = "-"
    python: str = "-"
    notes: list[str] = field(default_factory=list)
    install_s: float = 0.0
    check_s: float = 0.0
    cached: bool = False

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    workdir: Path
    output_dir: Path

    def normalized(self, text: str) -> str:
        return text.replace(str(self.workdir), "<workdir>")

    def before_recap(self) -> str:
        marker = self.stdout.find("PERFSTATS RECAP")
        text = self.stdout if marker < 0 else self.stdout[: self.stdout.rfind("\n", 0, marker - 1) + 1]
        return self.normalized(text)

    def run_dirs(self) -> list[Path]:
        if not self.output_dir.is_dir():
            return []
        return sorted(p for p in self.output_dir.iterdir() if p.is_dir())

    def records(self) -> list[dict[str, Any]]:
        dirs = self.run_dirs()
        expect(len(dirs) == 1, "expected one run directory, found %s" % dirs, self)
        path = dirs[0] / "records.jsonl"
        expect(path.is_file(), "no records.jsonl in %s" % dirs[0], self)
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dirs()[0] / "summary.json").read_text())

    def describe(self) -> str:
        return "rc=%d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (self.rc, self.stdout[-4000:], self.stderr[-4000:])


def expect(condition: bool, message: str, run: PlaybookRun | None = None) -> None:
    if not condition:
        raise CheckFailed(message + ("" if run is None else "\n" + run.describe()))


def groups_of(pid: int) -> list[str]:
    """cgroup directories a controller with this pid made (its run groups and all beneath them).

    Only this process's own groups are looked for: others may be profiling
    runs on the same machine at the same time.
    """
    prefix = "perfstats-run-%d-" % pid
    found: list[str] = []
    if CGROUP_ROOT.is_dir():
        for top, dirs, _files in os.walk(CGROUP_ROOT):
            found.extend(os.path.join(top, name) for name in dirs if name.startswith(prefix))
    return sorted(found)


# ----------------------------------------------------------------------------
# installing a row
# ----------------------------------------------------------------------------
def snapshot(source: Path, dest: Path) -> Path:
    """A still copy of the collection's files, taken once for every row.

    Building straight from a working tree that is being edited can catch a
    file between its checksum and its copy; a snapshot also makes every row
    test the same files. In a git checkout the files are those git tracks or
    would track (untracked but not ignored); elsewhere, the whole tree.
    """
    shutil.rmtree(dest, ignore_errors=True)
    done = call(["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"], 120)
    if done.returncode != 0 or not (source / ".git").exists():
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", "*.pyc"))
        return dest
    for name in sorted(set(filter(None, done.stdout.split("\0")))):
        origin = source / name
        if origin.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    return dest


def pyenv_root() -> Path:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    try:
        out = subprocess.run(["pyenv", "root"], check=True, capture_output=True, text=True).stdout.strip()
        if out:
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    return Path.home() / ".pyenv"


def log(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def call(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


class Installed:
    """Where a row's Ansible lives and how to call it."""

    def __init__(self, row: Row, home: Path, source: Path = REPO) -> None:
        self.row = row
        self.home = home
        self.source = source
        self.base_python = pyenv_root() / "versions" / row.python / "bin" / "python"
        if row.layout == "target":
            self.prefix = home / "site"
            self.python = self.base_python
            self.bin = self.prefix / "bin"
        else:
            self.prefix = home / "venv"
            self.python = self.prefix / "bin" / "python"
            self.bin = self.prefix / "bin"

    def spec(self) -> str:
        row = self.row
        text = json.dumps([row.python, row.layout, row.pip_first, row.packages, row.psutil], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PERFSTATS_", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = "%s:%s" % (self.bin, env.get("PATH", "/usr/bin:/bin"))
        if self.row.layout == "target":
            env["PYTHONPATH"] = str(self.prefix)
        return env

    def command(self, tool: str) -> list[str]:
        return [str(self.python), str(self.bin / tool)]

    def install(self, result: Result, refresh: bool) -> bool:
        """Create or reuse the row's environment; False when it cannot be installed."""
        stamp = self.prefix / ".matrix-spec"
        if not self.base_python.is_file():
            result.note("Python %s is not installed (%s)" % (self.row.python, self.base_python))
            return False
        if not refresh and stamp.is_file() and stamp.read_text().strip() == self.spec():
            result.cached = True
            return True
        shutil.rmtree(self.prefix, ignore_errors=True)
        started = time.monotonic()
        steps: list[list[str]] = []
        packages = list(self.row.packages) + (["psutil"] if self.row.psutil else [])
        if self.row.layout == "target":
            steps.append([str(self.base_python), "-m", "pip", "install", "--quiet", "--target", str(self.prefix), *packages])
        else:
            steps.append([str(self.base_python), "-m", "venv", str(self.prefix)])
            pip = [str(self.python), "-m", "pip", "install", "--quiet"]
            if self.row.pip_first:
                steps.append([*pip, *self.row.pip_first])
            steps.append([*pip, *packages])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        for step in steps:
            try:
                done = call(step, INSTALL_TIMEOUT, env=env)
            except subprocess.TimeoutExpired:
                result.note("install timed out: %s" % " ".join(step))
                return False
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                result.note("install failed: %s: %s" % (" ".join(step[3:]), " | ".join(tail)))
                return False
        stamp.write_text(self.spec() + "\n")
        result.install_s = time.monotonic() - started
        return True

    def describe(self, result: Result) -> None:
        code = "import sys, ansible.release; print(ansible.release.__version__); print('%d.%d.%d' % sys.version_info[:3])"
        done = call([str(self.python), "-c", code], 120, env=self.env())
        lines = done.stdout.split()
        if done.returncode == 0 and len(lines) == 2:
            result.version, result.python = lines

    def install_collection(self, dest: Path) -> Path:
        """This checkout as a collection beneath dest; returns the collections path."""
        collections = dest / "collections"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        if self.row.install_collection == "copy":
            target = collections / "ansible_collections" / "perfstats" / "profiler"
            target.mkdir(parents=True)
            for name in ("galaxy.yml", "README.md", "meta", "plugins", "docs"):
                source = self.source / name
                if source.is_dir():
                    shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                elif source.is_file():
                    shutil.copy2(source, target / name)
            return collections
        dist = dest / "dist"
        env = self.env()
        done = call(
            [*self.command("ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(self.source)], 300, env=env
        )
        if done.returncode != 0:
            raise CheckFailed("ansible-galaxy collection build failed:\n%s%s" % (done.stdout, done.stderr))
        tarballs = sorted(dist.glob("perfstats-profiler-*.tar.gz"))
        if len(tarballs) != 1:
            raise CheckFailed("ansible-galaxy collection build made %s" % tarballs)
        done = call(
            [*self.command("ansible-galaxy"), "collection", "install", "--force", "-p", str(collections), str(tarballs[0])],
            300,
            env=env,
        )
        if done.returncode != 0:
            raise CheckFailed("ansible-galaxy collection install failed:\n%s%s" % (done.stdout, done.stderr))
        installed = (
            collections / "ansible_collections" / "perfstats" / "profiler" / "plugins" / "callback" / "profile_resources.py"
        )
        if not installed.is_file():
            raise CheckFailed("the installed collection has no callback at %s" % installed)
        return collections


# ----------------------------------------------------------------------------
# running playbooks
# ----------------------------------------------------------------------------
class Runner:
    def __init__(self, installed: Installed, collections: Path, base: Path) -> None:
        self.installed = installed
        self.collections = collections
        self.base = base
        self.count = 0

    def run(
        self,
        playbook: str,
        enabled: bool = True,
        settings: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> PlaybookRun:
        self.count += 1
        workdir = self.base / ("run%02d" % self.count)
        workdir.mkdir(parents=True)
        output_dir = workdir / "perfstats-out"
        (workdir / "site.yml").write_text(playbook)
        (workdir / "inventory.ini").write_text(INVENTORY)
        paths_key = "collections_paths" if self.installed.row.install_collection == "copy" else "collections_path"
        lines = [
            "[defaults]",
            "inventory = inventory.ini",
            "retry_files_enabled = false",
            "%s = %s" % (paths_key, self.collections),
        ]
        if enabled:
            lines.append("%s = %s" % (self.installed.row.enable_key, CALLBACK))
        lines += ["", "[callback_profile_resources]", "output_dir = %s" % output_dir]
        lines += ["%s = %s" % item for item in (settings or {}).items()]
        (workdir / "ansible.cfg").write_text("\n".join(lines) + "\n")
        env = self.installed.env()
        env.update(
            ANSIBLE_CONFIG=str(workdir / "ansible.cfg"),
            ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            LC_ALL="C.UTF-8",
            LANG="C.UTF-8",
        )
        cmd = [*self.installed.command("ansible-playbook"), "site.yml", *(args or [])]
        with subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
        run = PlaybookRun(proc.returncode, stdout, stderr, workdir, output_dir)
        leaked = groups_of(proc.pid)
        expect(not leaked, "cgroups left behind: %s" % leaked, run)
        return run


def check_clean_stderr(run: PlaybookRun, row: Row, result: Result, what: str) -> None:
    """No traceback, no warning of ours, no deprecation (on rows that must have none)."""
    both = run.stdout + run.stderr
    expect("Traceback" not in both, "%s: a traceback" % what, run)
    deprecations = [line for line in both.splitlines() if "DEPRECATION" in line]
    ours = [line for line in deprecations if "perfstats" in line or "callback" in line.lower()]
    expect(not ours, "%s: a deprecation about this callback: %s" % (what, ours), run)
    if deprecations:
        expect(not row.strict_deprecations, "%s: deprecation warnings: %s" % (what, deprecations), run)
        note = "deprecation warnings not about this collection: %s" % "; ".join(sorted(set(deprecations)))
        if note not in result.notes:
            result.note(note)


def recap_row(stdout: str, task: str) -> list[str]:
    recap = stdout[stdout.index("PERFSTATS RECAP") :]
    for line in recap.splitlines():
        if line.strip().startswith(task + " "):
            return line.split()
    raise CheckFailed("no recap row for %s in:\n%s" % (task, recap))


def check_loads(runner: Runner, row: Row, result: Result) -> None:
    run = runner.run(LOADS)
    expect(run.rc == 0, "known loads: rc %d, expected 0" % run.rc, run)
    check_clean_stderr(run, row, result, "known loads")
    expect("perfstats.profiler:" not in run.stderr, "known loads: a warning from the callback", run)
    expect("PERFSTATS RECAP" in run.stdout, "known loads: no recap", run)
    expect(run.stdout.index("PLAY RECAP") < run.stdout.index("PERFSTATS RECAP"), "known loads: recap before PLAY RECAP", run)
    records = run.records()
    tasks = {r["task_name"]: r for r in records if r["scope"] == "task"}
    hosts = [r for r in records if r["scope"] == "host"]
    for name in ("warm-up", "baseline", "burn", "hold", "fanout", "items"):
        expect(name in tasks, "known loads: no task record for %s (have %s)" % (name, sorted(tasks)), run)
    summary = run.summary()
    expect(summary.get("complete") is True, "known loads: summary not complete: %s" % summary.get("complete"), run)
    expect(summary.get("backend") != "process-tree", "known loads: fell back to the process tree", run)
    extra = tasks["burn"]["cpu_total_s"] - tasks["baseline"]["cpu_total_s"]
    low, high = BURN_BOUNDS
    expect(low <= extra <= high, "burn cost %.3f CPU-s more than the baseline, expected %g to %g" % (extra, low, high), run)
    expect(recap_row(run.stdout, "burn")[1] == "%.2f" % tasks["burn"]["cpu_total_s"], "recap and record of burn differ", run)
    expect(tasks["hold"]["memory_peak_bytes"] >= HOLD_MIB * MIB, "hold peak %s B" % tasks["hold"]["memory_peak_bytes"], run)
    expect(tasks["fanout"]["pids_peak"] >= FANOUT, "fanout PID peak %s" % tasks["fanout"]["pids_peak"], run)
    expect(tasks["baseline"]["pids_peak"] < FANOUT, "baseline PID peak %s" % tasks["baseline"]["pids_peak"], run)
    burn_hosts = [r for r in hosts if r["task_name"] == "burn"]
    expect(len(burn_hosts) == 1 and burn_hosts[0]["host"] == "localhost", "host records of burn: %s" % burn_hosts, run)
    item_hosts = [r for r in hosts if r["task_name"] == "items"]
    expect(len(item_hosts) >= 2, "one host record per loop item expected, got %d" % len(item_hosts), run)
    match = re.search(r"max PIDs (\d+)", run.stdout)
    expect(bool(match) and int(match.group(1)) >= FANOUT, "recap run line lacks the PID maximum", run)
    result.note(
        "%s; burn +%.2f CPU-s, hold %.0f MiB, fanout %d PIDs"
        % (summary.get("backend"), extra, tasks["hold"]["memory_peak_bytes"] / MIB, tasks["fanout"]["pids_peak"])
    )


def check_outcome_unchanged(runner: Runner, row: Row, result: Result) -> None:
    plain = runner.run(OUTCOME, enabled=False)
    expect(plain.rc == OUTCOME_RC, "outcome without the callback: rc %d, expected %d" % (plain.rc, OUTCOME_RC), plain)
    profiled = runner.run(OUTCOME)
    expect(profiled.rc == plain.rc, "outcome: rc %d with the callback, %d without" % (profiled.rc, plain.rc), profiled)
    check_clean_stderr(profiled, row, result, "outcome")
    expect("PERFSTATS RECAP" in profiled.stdout, "outcome: no recap after a failed run", profiled)
    expect(profiled.before_recap() == plain.normalized(plain.stdout), "outcome: stdout differs before the recap", profiled)


def check_degraded(runner: Runner, row: Row, result: Result) -> None:
    plain = runner.run(OUTCOME, enabled=False, args=["-v"])
    profiled = runner.run(OUTCOME, args=["-v"])
    expect(plain.rc == OUTCOME_RC, "without the callback: rc %d, expected %d" % (plain.rc, OUTCOME_RC), plain)
    expect(profiled.rc == plain.rc, "rc %d with the callback, %d without" % (profiled.rc, plain.rc), profiled)
    check_clean_stderr(profiled, row, result, "degraded")
    said = [line for line in profiled.stdout.splitlines() if "perfstats.profiler" in line]
    expect(
        len(said) == 1 and "profiling unavailable" in said[0], "expected one 'profiling unavailable' line: %s" % said, profiled
    )
    rest = "\n".join(line for line in profiled.normalized(profiled.stdout).splitlines() if line not in said)
    expect(rest == "\n".join(plain.normalized(plain.stdout).splitlines()), "stdout differs beyond that line", profiled)
    expect(profiled.normalized(profiled.stderr) == plain.normalized(plain.stderr), "stderr differs", profiled)
    quiet_plain = runner.run(OUTCOME, enabled=False)
    quiet = runner.run(OUTCOME)
    expect(quiet.rc == quiet_plain.rc, "without -v: rc differs", quiet)
    expect(quiet.normalized(quiet.stdout) == quiet_plain.normalized(quiet_plain.stdout), "without -v: stdout differs", quiet)
    expect(not quiet.run_dirs() and not profiled.run_dirs(), "files written although profiling is unavailable", quiet)
    result.note("says: %s" % said[0].strip())


def check_no_psutil(installed: Installed, runner: Runner, row: Row, result: Result) -> None:
    done = call([str(installed.python), "-c", "import psutil"], 60, env=installed.env())
    expect(done.returncode != 0, "psutil is importable in a row that must not have it")
    check_loads(runner, row, result)
    plain = runner.run(OUTCOME, enabled=False)
    forced = runner.run(OUTCOME, settings={"backend": "process"})
    expect(
        forced.rc == plain.rc, "backend=process without psutil: rc %d, %d without the callback" % (forced.rc, plain.rc), forced
    )
    warnings = [line for line in forced.stderr.splitlines() if "perfstats.profiler:" in line]
    expect(len(warnings) == 1 and "psutil" in warnings[0], "expected one warning naming psutil: %s" % warnings, forced)
    expect(forced.normalized(forced.stdout) == plain.normalized(plain.stdout), "backend=process: stdout changed", forced)
    result.note("backend=process warns: %s" % warnings[0].split("perfstats.profiler:", 1)[1].strip())


def run_row(row: Row, refresh: bool, source: Path = REPO) -> Result:
    result = Result(row)
    home = CACHE / row.id
    installed = Installed(row, home, source)
    log("== %s: installing %s on Python %s" % (row.id, " ".join(row.packages[:1]), row.python))
    if not installed.install(result, refresh):
        log("   cannot be installed: %s" % "; ".join(result.notes))
        return result
    installed.describe(result)
    log(
        "   %s %s on Python %s (%s)"
        % (row.ansible, result.version, result.python, "cached" if result.cached else "%.0fs" % result.install_s)
    )
    started = time.monotonic()
    try:
        collections = installed.install_collection(home / "collection")
        runs = home / "runs"
        shutil.rmtree(runs, ignore_errors=True)
        runner = Runner(installed, collections, runs)
        if row.kind == "full":
            check_loads(runner, row, result)
            check_outcome_unchanged(runner, row, result)
        elif row.kind == "degraded":
            check_degraded(runner, row, result)
        else:
            check_no_psutil(installed, runner, row, result)
        result.status = "PASS"
    except (CheckFailed, subprocess.TimeoutExpired) as exc:
        result.status = "FAIL"
        result.note(str(exc))
    result.check_s = time.monotonic() - started
    log("   %s in %.0fs: %s" % (result.status, result.check_s, result.notes[-1].splitlines()[0] if result.notes else ""))
    if result.status == "FAIL":
        log(textwrap.indent(result.notes[-1], "   | "))
    return result


# ----------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------
KIND_TEXT = {"full": "full function", "degraded": "degrades (unprofiled)", "no-psutil": "cgroups without psutil"}


def table(results: list[Result]) -> str:
    lines = [
        "| Row | Ansible | Installed | Python | Enabled with | Expectation | Result | Notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for res in results:
        row = res.row
        status = res.status if res.status != "UNTESTED" else "untested (cannot be installed here)"
        note = "; ".join(n.splitlines()[0] for n in res.notes)[:300].replace("|", "/")
        lines.append(
            "| %s | %s | %s | %s | `%s` | %s | %s | %s |"
            % (row.id, row.ansible, res.version, res.python, row.enable_key, KIND_TEXT[row.kind], status, note)
        )
    return "\n".join(lines)


def write_docs(results: list[Result], stamp: str, total_s: float, install_s: float) -> None:
    text = DOC.read_text() if DOC.is_file() else "%s\n%s\n" % (TABLE_BEGIN, TABLE_END)
    if TABLE_BEGIN not in text or TABLE_END not in text:
        text += "\n%s\n%s\n" % (TABLE_BEGIN, TABLE_END)
    head, rest = text.split(TABLE_BEGIN, 1)
    _old, tail = rest.split(TABLE_END, 1)
    body = "\nLatest run: %s, %d rows, %.0f s in all on this machine (%.0f s of it creating environments).\n\n%s\n\n" % (
        stamp,
        len(results),
        total_s,
        install_s,
        table(results),
    )
    DOC.write_text(head + TABLE_BEGIN + body + TABLE_END + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ci", action="store_true", help="only the rows CI runs")
    parser.add_argument("--rows", help="comma-separated row ids")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--refresh", action="store_true", help="recreate cached environments")
    parser.add_argument("--write-docs", action="store_true", help="write the result table into docs/matrix.md")
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="collection tree to install instead of this checkout (to see a deliberately broken tree fail)",
    )
    parser.add_argument("--allow-untested", action="store_true", help="rows that cannot be installed do not fail the run")
    args = parser.parse_args(argv)
    rows = ROWS
    if args.ci:
        rows = [row for row in rows if row.ci]
    if args.rows:
        wanted = [item.strip() for item in args.rows.split(",") if item.strip()]
        unknown = sorted(set(wanted) - {row.id for row in ROWS})
        if unknown:
            parser.error("unknown rows: %s (known: %s)" % (", ".join(unknown), ", ".join(r.id for r in ROWS)))
        rows = [row for row in ROWS if row.id in wanted]
    if args.list:
        for row in rows:
            log("%-24s %-30s Python %-8s %s%s" % (row.id, row.ansible, row.python, row.kind, "  (ci)" if row.ci else ""))
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    source = args.source.resolve()
    if source != REPO and args.write_docs:
        parser.error("--write-docs records results of this checkout only")
    source = snapshot(source, CACHE / "source")
    results = [run_row(row, args.refresh, source) for row in rows]
    total = time.monotonic() - started
    log("\n" + table(results))
    installs = sum(r.install_s for r in results)
    log("\n%d rows in %.0fs (installs %.0fs)" % (len(results), total, installs))
    (CACHE / "results.json").write_text(
        json.dumps(
            [{"row": r.row.id, "status": r.status, "version": r.version, "python": r.python, "notes": r.notes} for r in results],
            indent=2,
        )
    )
    if args.write_docs:
        write_docs(results, stamp, total, installs)
    failed = [r for r in results if r.status == "FAIL" or (r.status == "UNTESTED" and not args.allow_untested)]
    passed = sum(r.status == "PASS" for r in results)
    log("matrix: %d passed, %d failed" % (passed, len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
