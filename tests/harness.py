"""Integration harness: run real ansible-playbook with this collection.

The collection is built from the working tree and installed into a temporary
collections path once per test session; each run gets its own directory with
an ansible.cfg, an inventory, the playbook and an output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CGROUP_ROOT = Path("/sys/fs/cgroup")
CALLBACK = "perfstats.profiler.profile_resources"


def _own_group_dirs() -> list[str]:
    """This process's own group directory in each mounted hierarchy."""
    sys.path.insert(0, str(REPO / "build" / "pytest-tree"))
    from ansible_collections.perfstats.profiler.plugins.module_utils._cgroups import detect_layout

    return [h.own_dir for h in detect_layout().hierarchies if h.own_dir]


def _run_pid(name: str) -> int | None:
    if not name.startswith("perfstats-run-"):
        return None
    try:
        return int(name[len("perfstats-run-") :].split("-", maxsplit=1)[0])
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has finished its work: its groups count as left behind.
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def perfstats_groups() -> set[str]:
    """perfstats cgroups beneath this process's own groups, other than live runs'.

    A run group is named after the process that made it; while that process
    still runs (another run going on at the same time) its groups are in use,
    not left behind.
    """
    found: set[str] = set()
    if not CGROUP_ROOT.is_dir():
        return found
    for own in _own_group_dirs():
        for top, dirs, _files in os.walk(own):
            for name in list(dirs):
                if not name.startswith("perfstats"):
                    continue
                pid = _run_pid(name)
                if pid is not None and pid != os.getpid() and _alive(pid):
                    dirs.remove(name)  # in use by a live run; not ours to judge
                    continue
                found.add(os.path.join(top, name))
    return found


def install_collection(dest: Path) -> Path:
    """Build the collection tarball from the checkout and install it under dest."""
    build = dest / "dist"
    build.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(build), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = next(build.glob("perfstats-profiler-*.tar.gz"))
    collections = dest / "collections"
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--force", "--offline", "-p", str(collections), str(tarball)],
        check=True,
        capture_output=True,
        text=True,
    )
    return collections


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    workdir: Path
    output_dir: Path

    def run_dirs(self) -> list[Path]:
        if not self.output_dir.is_dir():
            return []
        return sorted(p for p in self.output_dir.iterdir() if p.is_dir())

    @property
    def run_dir(self) -> Path:
        dirs = self.run_dirs()
        assert len(dirs) == 1, "expected one run directory, found %s\nstdout:\n%s\nstderr:\n%s" % (dirs, self.stdout, self.stderr)
        return dirs[0]

    def records(self) -> list[dict[str, Any]]:
        path = self.run_dir / "records.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def tasks(self) -> dict[str, dict[str, Any]]:
        return {r["task_name"]: r for r in self.records() if r["scope"] == "task"}

    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())

    def normalized(self, text: str) -> str:
        """Text with this run's own directory replaced, to compare two runs."""
        return text.replace(str(self.workdir), "<workdir>")

    def before_recap(self) -> str:
        """stdout up to (not including) the profiler's recap, normalized."""
        marker = self.stdout.find("PERFSTATS RECAP")
        text = self.stdout if marker < 0 else self.stdout[: self.stdout.rfind("\n", 0, marker - 1) + 1]
        return self.normalized(text)


@dataclass
class Harness:
    collections: Path
    base: Path
    counter: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        playbook: str,
        *,
        enabled: bool = True,
        settings: dict[str, str] | None = None,
        defaults: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        inventory: str | None = None,
        stdout_callback: str | None = None,
        files: dict[str, str] | None = None,
        timeout: float = 600,
        command: str = "ansible-playbook",
        background: bool = False,
    ) -> Run | tuple[subprocess.Popen, Path, Path]:
        """Run a playbook text; ``settings`` go to [callback_profile_resources]."""
        self.counter += 1
        workdir = self.base / ("run%03d" % self.counter)
        workdir.mkdir(parents=True)
        output_dir = workdir / "perfstats-out"
        (workdir / "site.yml").write_text(textwrap.dedent(playbook))
        (workdir / "inventory.ini").write_text(
            inventory or 'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n'
        )
        for name, text in (files or {}).items():
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))
        lines = ["[defaults]", "inventory = inventory.ini", "retry_files_enabled = false", "interpreter_python = auto_silent"]
        if enabled:
            lines += ["callbacks_enabled = %s" % CALLBACK, "callback_whitelist = %s" % CALLBACK]
        if stdout_callback:
            lines.append("stdout_callback = %s" % stdout_callback)
        lines += ["%s = %s" % item for item in (defaults or {}).items()]
        section = {"output_dir": str(output_dir), **(settings or {})}
        lines += ["", "[callback_profile_resources]"] + ["%s = %s" % item for item in section.items()]
        (workdir / "ansible.cfg").write_text("\n".join(lines) + "\n")
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PERFSTATS_"))}
        run_env.update(
            ANSIBLE_CONFIG=str(workdir / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            PYTHONWARNINGS="ignore",
        )
        run_env.update(self.env)
        run_env.update(env or {})
        cmd = [str(BIN / command), "site.yml", *(args or [])]
        if background:
            proc = subprocess.Popen(cmd, cwd=workdir, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            return proc, workdir, output_dir
        done = subprocess.run(cmd, check=False, cwd=workdir, env=run_env, capture_output=True, text=True, timeout=timeout)
        return Run(done.returncode, done.stdout, done.stderr, workdir, output_dir)


def python_burn(seconds: float) -> str:
    """A command task burning ``seconds`` of CPU in one process."""
    return textwrap.dedent(
        """\
        ansible.builtin.command:
          argv:
            - "{{ ansible_playbook_python }}"
            - -c
            - |
              import time
              end = time.process_time() + %s
              while time.process_time() < end:
                  pass
        """
        % seconds
    )


BURN = 1.5
REPEAT = 3


def burn_excess(tasks: dict[str, dict[str, Any]]) -> tuple[float, float, float]:
    """What the known-loads burns cost beyond the sleeps as long, with both sides.

    Every one of these tasks also pays for its worker, its module's interpreter and
    the controller's polling: 0.3-0.45 s of CPU that varies by a tenth of a second
    from task to task on a small, busy machine. That noise only ever adds, so the
    cheapest task of each kind is the one nearest the load itself.
    """
    burns = min(tasks["burn%d" % i]["cpu_total_s"] for i in range(REPEAT))
    sleeps = min(tasks["sleep%d" % i]["cpu_total_s"] for i in range(REPEAT))
    return burns - sleeps, burns, sleeps


# A meter that missed the module's process would see ~0 s, one counting it twice ~2 x BURN.
BURN_TOLERANCE = 0.1 * BURN


def indent(text: str, spaces: int) -> str:
    return text.replace("\n", "\n" + " " * spaces)


def known_loads_playbook() -> str:
    pairs = "".join(
        f"""
    - name: sleep{i}
      ansible.builtin.command: "{{{{ ansible_playbook_python }}}} -c 'import time; time.sleep({BURN})'"
    - name: burn{i}
      {indent(python_burn(BURN), 6)}"""
        for i in range(REPEAT)
    )
    return (
        """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: warm-up
      ansible.builtin.command: "{{ ansible_playbook_python }} -c pass"
%s
    - name: quiet
      ansible.builtin.command: "{{ ansible_playbook_python }} -c 'import time; time.sleep(0.5)'"
    - name: hold
      ansible.builtin.command: "{{ ansible_playbook_python }} -c 'import time; b = bytearray(200 * 1024 * 1024); time.sleep(1.2)'"
    - name: spike
      ansible.builtin.command: >-
        {{ ansible_playbook_python }} -c
        'import time; t = time.monotonic(); b = bytearray(150 * 1024 * 1024); del b;
        print(time.monotonic() - t); time.sleep(0.6)'
    - name: fanout
      ansible.builtin.shell: "for i in $(seq 30); do sleep 1 & done; wait"
"""
        % pairs
    )


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---- group directories read independently of the code under test ----

PROFILED_V1 = {"cpuacct", "memory", "pids"}


def own_dirs() -> dict[str, Path]:
    """This process's group directory per hierarchy key (``unified`` or the v1 controllers joined by commas)."""
    v1_mounts: list[tuple[set[str], str]] = []
    v2_mount = None
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            v2_mount = fields[1]
        elif fields[2] == "cgroup":
            v1_mounts.append((set(fields[3].split(",")), fields[1]))
    found: dict[str, Path] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, names, path = line.split(":", 2)
        if not names:
            if v2_mount:
                found["unified"] = Path(v2_mount + path.rstrip("/")) if path != "/" else Path(v2_mount)
            continue
        wanted = set(names.split(","))
        for options, mountpoint in v1_mounts:
            if wanted <= options:
                found[",".join(sorted(wanted))] = Path(mountpoint + path) if path != "/" else Path(mountpoint)
                break
    return found


def prepared_keys() -> list[str]:
    """Hierarchies the profiler (and a base group) uses here."""
    return [key for key in own_dirs() if key == "unified" or set(key.split(",")) & PROFILED_V1]


def remove_tree(path: Path) -> None:
    """rmdir a group and every group beneath it (deepest first)."""
    if not path.is_dir():
        return
    for top, _dirs, _files in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
        os.rmdir(top)
