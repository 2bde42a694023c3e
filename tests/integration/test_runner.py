"""profiling_data in ansible-runner job events, through real ansible-runner jobs.

These tests need the ``perfstats-profiler-runner`` plugin installed next to
ansible-runner in the interpreter running them (``pip install ./runner``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

ansible_runner = pytest.importorskip("ansible_runner", reason="ansible-runner is not installed in this interpreter")

BIN = Path(sys.executable).parent
CALLBACK = "perfstats.profiler.profile_resources"
RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"}
ITEM_EVENTS = {"runner_item_on_ok", "runner_item_on_failed", "runner_item_on_skipped"}

SMALL = """\
- hosts: local
  gather_facts: false
  tasks:
    - name: run a command
      ansible.builtin.command: "true"
    - name: loop over two items
      ansible.builtin.debug:
        msg: "{{ item }}"
      loop: [a, b]
    - name: last task
      ansible.builtin.debug:
        msg: done
"""

VARIED = """\
- hosts: local
  gather_facts: false
  tasks:
    - name: run a command
      ansible.builtin.command: "true"
    - name: loop with a failing item
      ansible.builtin.command: "{{ item }}"
      loop: ["true", "false", "true"]
      ignore_errors: true
    - name: skipped
      ansible.builtin.debug:
        msg: never
      when: false
    - name: skipped items
      ansible.builtin.debug:
        msg: "{{ item }}"
      loop: [1, 2]
      when: item > 5
- hosts: all
  gather_facts: false
  tasks:
    - name: two hosts, one unreachable
      ansible.builtin.command: "true"
      ignore_unreachable: true
    - name: last task
      ansible.builtin.debug:
        msg: done
"""


def _plugin_installed() -> bool:
    return any(ep.name == "perfstats_profiler" for ep in metadata.entry_points(group="ansible_runner.plugins"))


pytestmark = pytest.mark.skipif(
    not _plugin_installed(),
    reason="the perfstats-profiler-runner plugin is not installed here (pip install ./runner)",
)


def make_job(
    base: Path, collections: Path, ident: str, playbook: str, *, enabled: bool = True, env: dict[str, str] | None = None
) -> Path:
    """A private data dir for one job; the profiler writes beneath the job's artifact dir."""
    pdd = base / ident
    (pdd / "project").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    (pdd / "env").mkdir()
    (pdd / "project" / "site.yml").write_text(textwrap.dedent(playbook))
    (pdd / "inventory" / "hosts").write_text(
        "[local]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
        "[far]\nghost ansible_host=127.0.0.1 ansible_port=9 ansible_connection=ssh ansible_user=nobody "
        "ansible_ssh_common_args='-o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
        % sys.executable
    )
    envvars = {
        "PATH": "%s:%s" % (BIN, os.environ.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONWARNINGS": "ignore",
        "PERFSTATS_OUTPUT_DIR": str(pdd / "artifacts" / ident / "perfstats"),
    }
    if enabled:
        envvars["ANSIBLE_CALLBACKS_ENABLED"] = CALLBACK
    envvars.update(env or {})
    (pdd / "env" / "envvars").write_text(json.dumps(envvars))
    return pdd


def run_dir(artifacts: Path) -> Path:
    dirs = sorted(p for p in (artifacts / "perfstats").iterdir() if p.is_dir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_records(artifacts: Path) -> list[dict[str, Any]]:
    text = (run_dir(artifacts) / "records.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_summary(artifacts: Path) -> dict[str, Any]:
    return json.loads((run_dir(artifacts) / "summary.json").read_text())


def job_event_files(artifacts: Path) -> list[dict[str, Any]]:
    events = [json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")]
    return sorted(events, key=lambda e: e["counter"])


def check_events(events: list[dict[str, Any]], records: list[dict[str, Any]], summary: dict[str, Any]) -> int:
    """Every result event carries its own host record; stats carries the summary. Answers the count."""
    hosts = [r for r in records if r["scope"] == "host"]
    by_seq = {r["seq"]: r for r in hosts}
    items: dict[tuple[str, str], int] = {}
    used: set[int] = set()
    checked = 0
    for event in events:
        name = event["event"]
        data = event.get("event_data", {})
        if name in RESULT_EVENTS or name in ITEM_EVENTS:
            assert "profiling_data" in data, "no profiling_data in %s of %s/%s" % (name, data.get("task"), data.get("host"))
            pd = data["profiling_data"]
            key = (data["task_uuid"], data["host"])
            if name in ITEM_EVENTS:
                items[key] = items.get(key, 0) + 1
                assert pd["item"] == items[key]
            else:
                items.pop(key, None)
                assert pd["item"] is None
            assert (pd["task_uuid"], pd["host"]) == key
            assert pd["scope"] == "host"
            assert pd["seq"] not in used, "one record given to two events"
            used.add(pd["seq"])
            assert pd == by_seq[pd["seq"]], "event data differs from the profiler's record"
            assert pd["attribution"] in ("host", "task")
            checked += 1
        elif name == "playbook_on_stats":
            assert data.get("profiling_data") == summary
        else:
            assert "profiling_data" not in data, name
    assert used == set(by_seq), "host records that reached no event: %s" % sorted(set(by_seq) - used)
    stats = [e for e in events if e["event"] == "playbook_on_stats"]
    assert len(stats) == 1
    return checked


def check_summary_covers_all(records: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    tasks = [r for r in records if r["scope"] == "task"]
    assert summary["complete"] is True
    assert summary["tasks"] == len(tasks)
    assert tasks[-1]["task_name"] == "last task"
    assert summary["memory_peak_bytes"] >= max(t["memory_peak_bytes"] for t in tasks)
    assert summary["config"]["output_dir"]["value"].endswith("perfstats")


@pytest.fixture
def ssh_available() -> None:
    if shutil.which("ssh") is None:
        pytest.skip("needs an ssh client to make an unreachable host")


def test_run_api_events_carry_profiling_data(tmp_path: Path, collections_path: Path, ssh_available: None) -> None:
    pdd = make_job(tmp_path, collections_path, "api", VARIED)
    seen: list[dict[str, Any]] = []
    seen_at_call: list[bool] = []

    def handler(event: dict[str, Any]) -> bool:
        if event["event"] in RESULT_EVENTS | ITEM_EVENTS | {"playbook_on_stats"}:
            seen_at_call.append("profiling_data" in event.get("event_data", {}))
        seen.append(json.loads(json.dumps(event)))
        return True

    from perfstats_profiler_runner import with_profiling_data

    statuses: list[dict[str, Any]] = []
    r = ansible_runner.run(
        private_data_dir=str(pdd),
        playbook="site.yml",
        ident="api",
        quiet=True,
        event_handler=with_profiling_data(handler),
        status_handler=lambda data, runner_config: statuses.append(data),
    )
    artifacts = pdd / "artifacts" / "api"
    assert r.rc == 0, (artifacts / "stdout").read_text()
    records = read_records(artifacts)
    summary = read_summary(artifacts)
    names = {e["event"] for e in seen}
    assert {"runner_on_ok", "runner_item_on_ok", "runner_item_on_failed", "runner_on_failed"} <= names
    assert {"runner_on_skipped", "runner_item_on_skipped", "runner_on_unreachable"} <= names
    # The files ansible-runner wrote, what the caller's handler was given, and runner's own reader agree.
    assert check_events(job_event_files(artifacts), records, summary) >= 10
    assert check_events(seen, records, summary) >= 10
    assert check_events(list(r.events), records, summary) >= 10
    assert all(seen_at_call)
    # A task run on two hosts at once: the figures are the task window's, and say so.
    two = [
        e["event_data"]["profiling_data"]
        for e in seen
        if e["event"] in RESULT_EVENTS and e["event_data"].get("task") == "two hosts, one unreachable"
    ]
    assert len(two) == 2 and {p["attribution"] for p in two} == {"task"}
    check_summary_covers_all(records, summary)
    assert statuses[-1]["status"] == "successful"
    assert statuses[-1]["profiling_data"] == summary
    # Every event was written here with its figures, so none travel with the status.
    assert "profiling_events" not in statuses[-1]


def test_cli_run_writes_profiling_data_into_job_events(tmp_path: Path, collections_path: Path) -> None:
    pdd = make_job(tmp_path, collections_path, "cli", SMALL)
    done = subprocess.run(
        [str(BIN / "ansible-runner"), "run", str(pdd), "-p", "site.yml", "--ident", "cli"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    artifacts = pdd / "artifacts" / "cli"
    records = read_records(artifacts)
    summary = read_summary(artifacts)
    assert check_events(job_event_files(artifacts), records, summary) == 5
    check_summary_covers_all(records, summary)


class Burner:
    """Keeps both CPUs busy with two spinning processes while in use."""

    def __enter__(self) -> Burner:
        code = "while True:\n    pass\n"
        self.procs = [subprocess.Popen([sys.executable, "-c", code]) for _cpu in range(os.cpu_count() or 2)]
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()


class TimeoutCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _run_jobs_at_once(base: Path, collections: Path, idents: list[str], playbook: str) -> list[Path]:
    pdds = [make_job(base, collections, ident, playbook) for ident in idents]
    runners = []
    for pdd, ident in zip(pdds, idents):
        thread, runner = ansible_runner.run_async(private_data_dir=str(pdd), playbook="site.yml", ident=ident, quiet=True)
        runners.append((thread, runner))
    for thread, _runner in runners:
        thread.join(timeout=300)
    for (_thread, runner), pdd in zip(runners, pdds):
        assert runner.rc == 0, (pdd / "artifacts" / runner.config.ident / "stdout").read_text()
    return pdds


def test_repeated_runs_with_busy_cpus_always_carry_complete_data(tmp_path: Path, collections_path: Path) -> None:
    """20 jobs, two at a time, while other processes keep every CPU busy."""
    counter = TimeoutCounter()
    logger = logging.getLogger("perfstats_profiler_runner")
    logger.addHandler(counter)
    checked = 0
    try:
        with Burner():
            for round_ in range(10):
                idents = ["rep%02da" % round_, "rep%02db" % round_]
                for pdd, ident in zip(_run_jobs_at_once(tmp_path, collections_path, idents, SMALL), idents):
                    artifacts = pdd / "artifacts" / ident
                    records = read_records(artifacts)
                    summary = read_summary(artifacts)
                    checked += check_events(job_event_files(artifacts), records, summary)
                    check_summary_covers_all(records, summary)
    finally:
        logger.removeHandler(counter)
    assert checked == 20 * 5
    # Every wait ended because the record was there, never because the limit ran out.
    assert counter.messages == []


def test_simultaneous_jobs_carry_only_their_own_figures(tmp_path: Path, collections_path: Path) -> None:
    idents = ["sim1", "sim2", "sim3"]
    playbook = SMALL.replace("run a command", "run a command in {{ inventory_hostname }}")
    run_ids = set()
    for pdd, ident in zip(_run_jobs_at_once(tmp_path, collections_path, idents, playbook), idents):
        artifacts = pdd / "artifacts" / ident
        records = read_records(artifacts)
        summary = read_summary(artifacts)
        events = job_event_files(artifacts)
        check_events(events, records, summary)
        own = {e["event_data"]["profiling_data"]["run_id"] for e in events if "profiling_data" in e.get("event_data", {})}
        assert own == {summary["run_id"]}
        run_ids.add(summary["run_id"])
        # Records name the tasks of this job's own play (task uuids are this process's).
        uuids = {e["event_data"]["task_uuid"] for e in events if e["event"] == "playbook_on_task_start"}
        assert {r["task_uuid"] for r in records} <= uuids
    assert len(run_ids) == 3


VOLATILE = {"uuid", "parent_uuid", "created", "pid", "runner_ident", "start", "end", "duration"}
VOLATILE_DATA = {"uuid", "start", "end", "duration", "task_uuid", "play_uuid", "playbook_uuid", "playbook", "task_path"}


def _normal(event: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in event.items() if k not in VOLATILE}
    data = {k: v for k, v in event.get("event_data", {}).items() if k not in VOLATILE_DATA and k != "profiling_data"}
    out["event_data"] = data
    return out


def test_events_are_unchanged_apart_from_profiling_data(tmp_path: Path, collections_path: Path) -> None:
    playbook = SMALL.replace('ansible.builtin.command: "true"', "ansible.builtin.debug:\n        msg: first")
    quiet = {"PERFSTATS_RECAP": "false"}
    profiled = make_job(tmp_path, collections_path, "with", playbook, env=quiet)
    plain = make_job(tmp_path, collections_path, "without", playbook, enabled=False, env=quiet)
    results = {}
    for pdd, ident in ((profiled, "with"), (plain, "without")):
        statuses: list[dict[str, Any]] = []
        r = ansible_runner.run(
            private_data_dir=str(pdd),
            playbook="site.yml",
            ident=ident,
            quiet=True,
            status_handler=lambda data, runner_config, statuses=statuses: statuses.append(data),
        )
        assert r.rc == 0
        results[ident] = (job_event_files(pdd / "artifacts" / ident), statuses)
    with_events, with_statuses = results["with"]
    without_events, without_statuses = results["without"]
    assert not (plain / "artifacts" / "without" / "perfstats").exists()
    assert all("profiling_data" not in e.get("event_data", {}) for e in without_events)
    assert all("profiling_data" not in s for s in without_statuses)
    assert sum("profiling_data" in e.get("event_data", {}) for e in with_events) == 6
    assert [_normal(e) for e in with_events] == [_normal(e) for e in without_events]


def test_transmit_worker_process_pipeline(tmp_path: Path, collections_path: Path, ssh_available: None) -> None:
    """The summary, every event's figures and the run's files reach the processing side of a streamed job."""
    ident = "remote"
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    pdd = make_job(
        tmp_path,
        collections_path,
        ident,
        VARIED,
        env={"PERFSTATS_OUTPUT_DIR": str(worker_dir / "artifacts" / ident / "perfstats")},
    )
    out_dir = tmp_path / "processed"
    out_dir.mkdir()
    cmd = (
        "{bin}/ansible-runner transmit {pdd} -p site.yml --ident {ident}"
        " | {bin}/ansible-runner worker --private-data-dir {worker}"
        " > {stream}"
    ).format(bin=BIN, pdd=pdd, ident=ident, worker=worker_dir, stream=tmp_path / "stream")
    done = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    statuses: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    with open(tmp_path / "stream", "rb") as stream:
        processor = ansible_runner.interface.init_runner(
            streamer="process",
            _input=stream,
            private_data_dir=str(out_dir),
            ident=ident,
            quiet=True,
            status_handler=lambda data, runner_config: statuses.append(data),
            event_handler=lambda event: events.append(event) or True,
        )
        status, rc = processor.run()
    assert (status, rc) == ("successful", 0) or status == "successful"
    artifacts = out_dir / "artifacts" / ident
    records = read_records(artifacts)
    summary = read_summary(artifacts)
    check_summary_covers_all(records, summary)
    assert statuses[-1]["status"] == "successful"
    assert statuses[-1]["profiling_data"] == summary
    assert {e["event"] for e in events} >= {"runner_on_ok", "runner_item_on_ok", "runner_on_unreachable", "playbook_on_stats"}
    # Events leave the worker before its plugins see them: the processing side gets them bare ...
    assert not any("profiling_data" in e.get("event_data", {}) for e in events)
    # ... and every one's figures with the final status, by event uuid.
    from perfstats_profiler_runner import EVENTS_FIELD, apply_profiling_events

    carried = statuses[-1][EVENTS_FIELD]
    wanted = {e["uuid"] for e in events if e["event"] in RESULT_EVENTS | ITEM_EVENTS | {"playbook_on_stats"}}
    assert set(carried) == wanted
    assert apply_profiling_events(artifacts, statuses[-1]) == len(wanted)
    assert check_events(job_event_files(artifacts), records, summary) >= 10
    # A second application changes nothing.
    before = job_event_files(artifacts)
    apply_profiling_events(artifacts, statuses[-1])
    assert job_event_files(artifacts) == before

    # Through the CLIs alone: the figures come back in the worker's artifacts, and the
    # command writes them into what `ansible-runner process` wrote.
    cli_dir = tmp_path / "processed-cli"
    cli_dir.mkdir()
    with open(tmp_path / "stream", "rb") as stream:
        done = subprocess.run(
            [str(BIN / "ansible-runner"), "process", str(cli_dir), "--ident", ident],
            stdin=stream,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    cli_artifacts = cli_dir / "artifacts" / ident
    assert json.loads((cli_artifacts / "perfstats" / "profiling_events.json").read_text()) == carried
    assert not any("profiling_data" in e.get("event_data", {}) for e in job_event_files(cli_artifacts))
    applied = subprocess.run(
        [str(BIN / "perfstats-runner-apply"), str(cli_artifacts)], capture_output=True, text=True, timeout=60, check=False
    )
    assert applied.returncode == 0, applied.stderr
    assert "written into %d job events" % len(wanted) in applied.stdout
    assert job_event_files(cli_artifacts) == job_event_files(artifacts)


def test_apply_command_on_jobs_without_streamed_figures(tmp_path: Path, collections_path: Path) -> None:
    """A direct job has no figures to apply (and is left as it is); a wrong directory is an error."""
    pdd = make_job(tmp_path, collections_path, "direct", SMALL)
    result = ansible_runner.run(private_data_dir=str(pdd), playbook="site.yml", ident="direct", quiet=True)
    assert result.status == "successful"
    artifacts = pdd / "artifacts" / "direct"
    assert not (artifacts / "perfstats" / "profiling_events.json").exists()
    before = job_event_files(artifacts)
    done = subprocess.run([str(BIN / "perfstats-runner-apply"), str(artifacts)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "nothing to apply" in done.stdout, done
    assert job_event_files(artifacts) == before
    done = subprocess.run(
        [str(BIN / "perfstats-runner-apply"), str(tmp_path / "nowhere")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "no job_events directory" in done.stderr, done
