"""Following a run's files: matching, the end of a wait, finding the run (no clocks involved)."""

from __future__ import annotations

import json
from pathlib import Path

from perfstats_profiler_runner._records import RunFiles, find_run_dir, wait_for_record, wait_for_summary


def host(seq: int, task: str = "t1", name: str = "h1", item: int | None = None) -> dict:
    return {"scope": "host", "seq": seq, "task_uuid": task, "host": name, "item": item}


def append(path: Path, *records: dict, raw: str = "") -> None:
    with open(path, "a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
        handle.write(raw)


class FakeTime:
    """A clock that moves only when slept on; ``on_sleep`` lets the 'profiler' write meanwhile."""

    def __init__(self, on_sleep=None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.sleeps)


def test_a_present_record_is_taken_without_waiting(tmp_path: Path) -> None:
    append(tmp_path / "records.jsonl", host(1), host(2, item=1))
    fake = FakeTime()
    run = RunFiles(str(tmp_path))
    assert wait_for_record(run, ("t1", "h1", 1), 2.0, fake.sleep, fake.clock) == (host(2, item=1), "found")
    assert wait_for_record(run, ("t1", "h1", None), 2.0, fake.sleep, fake.clock) == (host(1), "found")
    assert fake.sleeps == 0


def test_a_record_is_given_once_in_order(tmp_path: Path) -> None:
    append(tmp_path / "records.jsonl", host(1), host(5))
    run = RunFiles(str(tmp_path))
    fake = FakeTime()
    assert wait_for_record(run, ("t1", "h1", None), 0, fake.sleep, fake.clock)[0]["seq"] == 1
    assert wait_for_record(run, ("t1", "h1", None), 0, fake.sleep, fake.clock)[0]["seq"] == 5
    assert wait_for_record(run, ("t1", "h1", None), 0, fake.sleep, fake.clock) == (None, "no-wait")


def test_the_wait_ends_when_the_record_arrives(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    append(path, host(1, task="t0"))
    fake = FakeTime(lambda n: append(path, host(2)) if n == 3 else None)
    record, why = wait_for_record(RunFiles(str(tmp_path)), ("t1", "h1", None), 2.0, fake.sleep, fake.clock)
    assert (record["seq"], why) == (2, "found")
    assert fake.sleeps == 3


def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    line = json.dumps(host(7))
    append(path, raw=line[:10])
    fake = FakeTime(lambda n: append(path, raw=line[10:] + "\n") if n == 2 else None)
    record, why = wait_for_record(RunFiles(str(tmp_path)), ("t1", "h1", None), 2.0, fake.sleep, fake.clock)
    assert (record, why) == (host(7), "found")


def test_the_wait_ends_when_the_profiler_moves_past(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    append(path, host(1, task="t0"))
    later = {"scope": "task", "seq": 2, "task_uuid": "t0", "host": None, "item": None}
    fake = FakeTime(lambda n: append(path, later) if n == 2 else None)
    assert wait_for_record(RunFiles(str(tmp_path)), ("t1", "h1", None), 2.0, fake.sleep, fake.clock) == (None, "passed")
    assert fake.sleeps == 2


def test_the_wait_ends_with_the_summary(tmp_path: Path) -> None:
    append(tmp_path / "records.jsonl", host(1, task="t0"))
    fake = FakeTime(lambda n: (tmp_path / "summary.json").write_text("{}") if n == 1 else None)
    run = RunFiles(str(tmp_path))
    assert wait_for_record(run, ("t1", "h1", None), 2.0, fake.sleep, fake.clock) == (None, "finished")
    assert wait_for_summary(run, 0, fake.sleep, fake.clock) == {}


def test_the_wait_is_bounded(tmp_path: Path) -> None:
    append(tmp_path / "records.jsonl", host(1, task="t0"))
    fake = FakeTime()
    run = RunFiles(str(tmp_path))
    assert wait_for_record(run, ("t1", "h1", None), 2.0, fake.sleep, fake.clock) == (None, "timeout")
    assert 2.0 <= fake.now < 2.02
    fake.now = 0.0
    assert wait_for_summary(run, 1.0, fake.sleep, fake.clock) is None
    assert 1.0 <= fake.now < 1.03


def test_the_run_is_found_by_pid_and_start(tmp_path: Path) -> None:
    for name in ("20250101T000000Z-42-aa", "20250101T000010Z-42-bb", "20250101T000020Z-43-cc", "notes"):
        (tmp_path / name).mkdir()
    job_start = 1735689605.0  # 2025-01-01T00:00:05Z
    assert find_run_dir([str(tmp_path / "missing"), str(tmp_path)], 42, job_start) == str(tmp_path / "20250101T000010Z-42-bb")
    assert find_run_dir([str(tmp_path)], 43, job_start + 30) is None
    assert find_run_dir([str(tmp_path)], 44, 0) is None


def test_streamed_figures_land_in_the_matching_job_events_only(tmp_path: Path, caplog) -> None:
    from perfstats_profiler_runner import EVENTS_FIELD, apply_profiling_events

    events = tmp_path / "job_events"
    events.mkdir()
    (events / "1-aaa.json").write_text(json.dumps({"uuid": "aaa", "counter": 1, "event_data": {"task": "x"}}))
    (events / "2-bbb.json").write_text(json.dumps({"uuid": "bbb", "counter": 2, "event_data": {}}))
    (events / "3-ccc.json").write_text("{not json")
    status = {"status": "successful", EVENTS_FIELD: {"aaa": host(1), "ccc": host(2)}}
    assert apply_profiling_events(tmp_path, {"status": "successful"}) == 0
    assert apply_profiling_events(tmp_path / "missing", status) == 0
    assert apply_profiling_events(tmp_path, status) == 1
    assert json.loads((events / "1-aaa.json").read_text())["event_data"] == {"task": "x", "profiling_data": host(1)}
    assert "profiling_data" not in json.loads((events / "2-bbb.json").read_text())["event_data"]
    assert (events / "3-ccc.json").read_text() == "{not json"
    assert "could not add profiling_data" in caplog.text
    assert sorted(p.name for p in events.iterdir()) == ["1-aaa.json", "2-bbb.json", "3-ccc.json"]


def test_streamed_figures_are_read_from_the_artifacts_without_a_status(tmp_path: Path, caplog) -> None:
    from perfstats_profiler_runner import EVENTS_FILE, RUN_SUBDIR, apply_profiling_events

    events = tmp_path / "job_events"
    events.mkdir()
    (events / "1-aaa.json").write_text(json.dumps({"uuid": "aaa", "counter": 1, "event_data": {}}))
    assert apply_profiling_events(tmp_path) == 0  # no file: nothing to do, no complaint
    assert "could not" not in caplog.text
    (tmp_path / RUN_SUBDIR).mkdir()
    figures = tmp_path / RUN_SUBDIR / EVENTS_FILE
    figures.write_text("{cut short")
    assert apply_profiling_events(tmp_path) == 0
    assert "could not read" in caplog.text
    figures.write_text(json.dumps({"aaa": host(1)}))
    assert apply_profiling_events(tmp_path) == 1
    assert json.loads((events / "1-aaa.json").read_text())["event_data"] == {"profiling_data": host(1)}
