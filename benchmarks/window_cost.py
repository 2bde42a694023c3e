"""The profiler's own CPU per task window and per sample, measured in-process.

Run by bench.py in a child process (a session moves its process between
groups): ``python window_cost.py COLLECTIONS_PATH BACKEND WINDOWS``.  Drives a
real Session on the real kernel without Ansible: WINDOWS task windows with
one host result each and no work in between, timing each boundary with the
calling thread's CPU clock; then an idle stretch sampled every 20 ms, whose
cost per sample the session measures itself (``profiler_cpu_s``).  Prints one
JSON object.  Unlike wall-clock ratios of whole playbook runs, these figures
do not drown in the noise of a shared machine.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main() -> int:
    collections, backend, windows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, collections)
    from ansible_collections.perfstats.profiler.plugins.plugin_utils._session import Session, SessionOptions

    lines: list[str] = []

    def emit(record: object) -> None:
        lines.append(json.dumps(dict(record)))  # type: ignore[call-overload]

    # Windows: a long interval keeps the sampler out of the way.
    session = Session(SessionOptions(backend=backend, interval=60.0), emit=emit)
    session.start()
    costs = []
    for index in range(windows):
        uuid = "uuid-%d" % index
        started = time.thread_time()
        session.open_window(uuid, "task %d" % index, "play", "task")
        session.host_started(uuid, "localhost")
        session.host_result(uuid, "localhost", "ok")
        costs.append(time.thread_time() - started)
    started = time.thread_time()
    session.finish()
    finish_cost = time.thread_time() - started
    used = session.backend

    # Samples: an idle run sampled every 20 ms for a few seconds.
    sampled = Session(SessionOptions(backend=backend, interval=0.02), emit=emit, sample_sink=lambda row: lines.append(repr(row)))
    sampled.start()
    time.sleep(3.0)
    summary = sampled.finish()
    samples = summary.get("samples") or 0
    costs.sort()
    print(
        json.dumps(
            {
                "backend": used,
                "windows": windows,
                "window_ms_median": 1000 * statistics.median(costs),
                "window_ms_p90": 1000 * costs[int(0.9 * (len(costs) - 1))],
                "finish_ms": 1000 * finish_cost,
                "samples": samples,
                "sample_ms": 1000 * (summary.get("profiler_cpu_s") or 0.0) / samples if samples else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
