#!/usr/bin/env python
"""How big and how quick is the HTML report of a big run?

Writes a synthetic run (by default 1,000 tasks on 2 hosts and one hour of
samples every 50 ms: 72,000 series rows) with the collection's own writer,
renders its report, and loads it in headless Chromium.  Prints:

* the run directory's size and the report's size;
* the time to render the report in Python (median of --repeat runs);
* Chromium's time to load the report and dump its DOM, next to its time for
  an empty page (the difference is what the report costs the browser);
* how many points the timeline draws.

Usage: .venv/bin/python benchmarks/report_size.py [--tasks N] [--hours H] [--interval S] [--keep DIR]
Chromium: apt-get install -y chromium (Debian); without it the browser figures are skipped.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _importable(tree: Path) -> None:
    link = tree / "ansible_collections" / "perfstats" / "profiler"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(REPO)
    sys.path.insert(0, str(tree))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % int((ts % 1) * 1000)


def synthesize(base: Path, tasks: int, seconds: float, interval: float, hosts: int) -> Path:
    from ansible_collections.perfstats.profiler.plugins.plugin_utils._outputs import RunOutputs

    rng = random.Random(42)
    start = 1767225600.0
    run_id = "20260101T000000Z-4242-bench0"
    outputs = RunOutputs(str(base), run_id, ("records", "summary", "series"))
    rows = int(seconds / interval)
    per_task = seconds / tasks
    seq = 0
    host_names = ["host%02d.example.com" % h for h in range(hosts)]
    for index in range(1, tasks + 1):
        t0, t1 = (index - 1) * per_task, index * per_task
        common = {
            "schema_version": 1,
            "run_id": run_id,
            "task_uuid": "uuid-%05d" % index,
            "task_name": "Task %d: configure service %s" % (index, rng.choice(("nginx", "postgres", "redis", "app"))),
            "task_kind": "handler" if index % 97 == 0 else "task",
            "play": "Play %d" % (1 + index // 250),
            "start": _iso(start + t0),
            "end": _iso(start + t1),
            "duration_s": round(per_task, 6),
            "cpu_user_s": round(rng.uniform(0.05, 2.0), 6),
            "cpu_system_s": round(rng.uniform(0.01, 0.5), 6),
            "cpu_pct_max": round(rng.uniform(20, 180), 1),
            "memory_peak_bytes": rng.randint(30, 400) * 2**20,
            "memory_peak_exact": True,
            "memory_end_bytes": rng.randint(2, 10) * 2**20,
            "pids_peak": rng.randint(4, 40),
            "pids_peak_exact": True,
            "backend": "cgroup2",
        }
        common["cpu_total_s"] = round(common["cpu_user_s"] + common["cpu_system_s"], 6)
        for host in host_names:
            seq += 1
            outputs.record(
                dict(
                    common,
                    scope="host",
                    seq=seq,
                    host=host,
                    status="ok",
                    item=None,
                    items=0,
                    attribution="task",
                    host_start=common["start"],
                    host_duration_s=round(per_task * 0.9, 6),
                )
            )
        seq += 1
        outputs.record(dict(common, scope="task", seq=seq, host=None, hosts=host_names, statuses=["ok"], items=0))
    for i in range(rows):
        t = (i + 1) * interval
        window = min(tasks, 1 + int(t / per_task))
        cpu = max(0.0, 60 + 40 * math.sin(t / 7.0) + rng.gauss(0, 15))
        if rng.random() < 0.0005:
            cpu = 400.0  # rare spikes that must still be drawn
        outputs.sample((round(t, 4), round(cpu, 1), int(2**20 * (80 + 60 * math.sin(t / 300.0))), 4 + i % 9, window))
    outputs.summary(
        {
            "schema_version": 1,
            "run_id": run_id,
            "playbook": "big-site.yml",
            "complete": True,
            "start": _iso(start),
            "end": _iso(start + seconds),
            "duration_s": seconds,
            "backend": "cgroup2",
            "exact": {"cpu": True, "memory_peak": True, "pids_peak": True},
            "cpu_total_s": 1234.5,
            "cpu_user_s": 1000.0,
            "cpu_system_s": 234.5,
            "cpu_pct_max": 400.0,
            "memory_peak_bytes": 400 * 2**20,
            "pids_peak": 40,
            "tasks": tasks,
            "samples": rows,
            "interval_s": interval,
        }
    )
    outputs.close()
    return Path(outputs.directory)


def chromium_seconds(browser: str, page: Path, profile: Path) -> float:
    began = time.perf_counter()
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--user-data-dir=%s" % profile,
            "--dump-dom",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="write the run and its report here instead of a temporary directory")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="perfstats-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        _importable(work / "tree")
        from ansible_collections.perfstats.profiler.plugins.plugin_utils import _report

        run_dir = synthesize(work / "runs", args.tasks, args.hours * 3600, args.interval, args.hosts)
        run_bytes = sum(f.stat().st_size for f in run_dir.iterdir() if f.is_file())
        renders = []
        for _attempt in range(max(1, args.repeat)):
            began = time.perf_counter()
            result = _report.write_report(str(run_dir))
            renders.append(time.perf_counter() - began)
        page = Path(result["dest"])
        html = page.read_text()
        points = [int(p) for p in re.findall(r'data-points="(\d+)"', html)]
        print("synthetic run: %d tasks, %d hosts, %d samples" % (args.tasks, args.hosts, int(args.hours * 3600 / args.interval)))
        print("run directory: %.1f MiB" % (run_bytes / 2**20))
        print("report.html:   %.2f MiB (%d bytes)" % (result["size"] / 2**20, result["size"]))
        print("timeline:      %s points drawn per chart" % ", ".join(str(p) for p in points))
        print("render (python, median of %d): %.2f s" % (len(renders), statistics.median(renders)))
        browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if browser is None:
            print("chromium: not found (apt-get install -y chromium); browser figures skipped")
            return 0
        blank = work / "blank.html"
        blank.write_text("<!DOCTYPE html><title>blank</title>")
        loads, empties = [], []
        for n in range(max(1, args.repeat)):
            empties.append(chromium_seconds(browser, blank, work / ("profile-b%d" % n)))
            loads.append(chromium_seconds(browser, page, work / ("profile-r%d" % n)))
        load, empty = statistics.median(loads), statistics.median(empties)
        print(
            "chromium load+dump (median of %d): report %.2f s, empty page %.2f s, report costs %.2f s"
            % (len(loads), load, empty, load - empty)
        )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
