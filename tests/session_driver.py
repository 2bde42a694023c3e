"""Drive a profiling Session on the real kernel, outside Ansible.

Usage: python session_driver.py '<json scenario>'
The scenario names the backend and a list of windows, each with a workload run
in child processes of this one; records and the summary are printed as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "pytest-tree"))

from ansible_collections.perfstats.profiler.plugins.plugin_utils._session import Session, SessionOptions  # noqa: E402


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def workload(spec: dict) -> None:
    kind = spec.get("kind")
    if kind == "burn":
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time\nend=time.process_time()+%s\nwhile time.process_time()<end: pass" % spec["seconds"],
            ],
            check=True,
        )
    elif kind == "hold":
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; b=bytearray(%d*1024*1024); time.sleep(%s)" % (spec["mib"], spec.get("seconds", 0.3)),
            ],
            check=True,
        )
    elif kind == "spike":
        # allocate, touch and free well inside 50 ms, then idle
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; b=bytearray(%d*1024*1024); del b; time.sleep(%s)" % (spec["mib"], spec.get("idle", 0.5)),
            ],
            check=True,
        )
    elif kind == "fork":
        subprocess.run(
            ["sh", "-c", "for i in $(seq %d); do sleep %s & done; wait" % (spec["count"], spec.get("seconds", 0.5))], check=True
        )
    elif kind == "daemon":
        proc = subprocess.Popen(
            ["sleep", str(spec.get("seconds", 30))],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(json.dumps({"daemon": proc.pid}), flush=True)
    elif kind == "sleep":
        time.sleep(spec["seconds"])


def main() -> int:
    scenario = json.loads(sys.argv[1])
    records: list[dict] = []
    warnings: list[str] = []
    options = SessionOptions(
        backend=scenario.get("backend", "auto"), base_group=scenario.get("base"), interval=scenario.get("interval", 0.05)
    )
    session = Session(options, emit=lambda r: records.append(dict(r)), warn=warnings.append)
    session.start()
    print(json.dumps({"started": session.backend, "run_id": session.run_id, "plan": session.plan.as_dict()}), flush=True)
    for index, window in enumerate(scenario["windows"]):
        session.open_window("uuid-%d" % index, window["name"], "play", "task")
        session.host_started("uuid-%d" % index, "localhost")
        workload(window)
        session.host_result("uuid-%d" % index, "localhost", "ok")
        if window.get("signal"):
            os.kill(os.getpid(), getattr(signal, window["signal"]))
            time.sleep(5)
    summary = session.finish()
    print(json.dumps({"records": records, "summary": summary, "warnings": warnings}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
