"""The report renderer with plain data: reading, downsampling, comparing, escaping."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat

import pytest

from ansible_collections.perfstats.profiler.plugins.plugin_utils import _report
from ansible_collections.perfstats.profiler.plugins.plugin_utils._outputs import RunOutputs

HOSTILE = "</script><script>document.title='x'</script> <!-- & \u2028 \"'"


def _task(seq: int, name: str, play: str = "play", **figures) -> dict:
    record = {
        "scope": "task",
        "seq": seq,
        "run_id": "run-1",
        "task_name": name,
        "task_kind": "task",
        "play": play,
        "start": "2026-01-02T03:04:%02d.000Z" % (5 + seq),
        "end": "2026-01-02T03:04:%02d.500Z" % (5 + seq),
        "duration_s": 0.5,
        "cpu_user_s": 0.1,
        "cpu_system_s": 0.1,
        "cpu_total_s": 0.2,
        "cpu_pct_max": 40.0,
        "memory_peak_bytes": 50 * 2**20,
        "memory_peak_exact": True,
        "memory_end_bytes": 2**20,
        "pids_peak": 4,
        "pids_peak_exact": True,
        "hosts": ["localhost"],
        "statuses": ["ok"],
        "items": 0,
    }
    record.update(figures)
    return record


def _run_dir(tmp_path, name: str, tasks, series_rows=(), hosts=(), summary=None):
    """A run directory written with the collection's own writer."""
    outputs = RunOutputs(str(tmp_path), name, ("records", "summary", "series"))
    for record in [*tasks, *hosts]:
        outputs.record(record)
    for row in series_rows:
        outputs.sample(row)
    outputs.summary(summary or {"run_id": name, "playbook": "site.yml", "start": "2026-01-02T03:04:05.000Z", "tasks": len(tasks)})
    outputs.close()
    return outputs.directory


def test_downsample_keeps_every_spike_and_trough():
    points = [(i * 0.05, 10.0) for i in range(72000)]
    points[12345] = (points[12345][0], 990.0)
    points[54321] = (points[54321][0], -5.0)
    drawn = _report.downsample(points, 500)
    assert len(drawn) <= 1000
    assert max(v for _t, v in drawn) == 990.0
    assert min(v for _t, v in drawn) == -5.0
    assert (points[12345][0], 990.0) in drawn
    assert [t for t, _v in drawn] == sorted(t for t, _v in drawn)


def test_downsample_leaves_short_series_alone():
    points = [(float(i), float(i % 7)) for i in range(300)]
    assert _report.downsample(points, 500) == points


def test_script_json_cannot_end_its_element():
    text = _report.script_json({"name": HOSTILE})
    assert not set("<>&\u2028") & set(text)
    assert json.loads(text) == {"name": HOSTILE}


def test_task_keys_count_occurrences_per_play_and_name():
    tasks = [_task(1, "a"), _task(2, "b"), _task(3, "a"), _task(4, "a", play="other")]
    assert _report.task_keys(tasks) == [("play", "a", 1), ("play", "b", 1), ("play", "a", 2), ("other", "a", 1)]


def test_compare_flags_growth_beyond_threshold_and_floor(tmp_path):
    base = [_task(1, "a"), _task(2, "a"), _task(3, "gone")]
    new = [
        _task(1, "a", cpu_total_s=0.22),  # +10 %: same
        _task(2, "a", cpu_total_s=0.9, memory_peak_bytes=200 * 2**20),  # both grew
        _task(3, "fresh"),
        _task(4, "tiny", cpu_total_s=0.2),
    ]
    old_run = _report.load_run(_run_dir(tmp_path, "old", base))
    new_run = _report.load_run(_run_dir(tmp_path, "new", new))
    result = _report.compare(new_run, old_run)
    rows = result["rows"]
    assert [r["matched"] for r in rows] == [True, True, False, False]
    assert rows[0]["worse"] == []
    assert rows[1]["worse"] == ["cpu_total_s", "memory_peak_bytes"]
    assert rows[1]["occurrence"] == 2
    assert result["regressions"] == 1
    assert result["removed"] == [{"name": "gone", "play": "play", "occurrence": 1}]
    # Below the floor a large percentage is noise.
    tiny_old = _report.load_run(_run_dir(tmp_path, "t-old", [_task(1, "x", cpu_total_s=0.01)]))
    tiny_new = _report.load_run(_run_dir(tmp_path, "t-new", [_task(1, "x", cpu_total_s=0.04)]))
    assert _report.compare(tiny_new, tiny_old)["rows"][0]["worse"] == []
    # A threshold above the growth accepts it.
    assert _report.compare(new_run, old_run, threshold=1000.0)["regressions"] == 0


def test_load_run_skips_unreadable_lines_and_rows(tmp_path):
    directory = _run_dir(tmp_path, "r", [_task(1, "a")], series_rows=[(0.05, 10.0, 100, 2, 1), (0.1, 20.0, 200, 3, 1)])
    with open(os.path.join(directory, "records.jsonl"), "a") as handle:
        handle.write("{not json\n")
    with open(os.path.join(directory, "series.csv"), "a") as handle:
        handle.write("oops,1\n")
    run = _report.load_run(directory)
    assert len(run.tasks) == 1 and len(run.series) == 2
    assert any("records.jsonl" in n for n in run.notes) and any("series.csv" in n for n in run.notes)


def test_load_run_refuses_a_directory_without_a_run(tmp_path):
    with pytest.raises(_report.ReportError):
        _report.load_run(str(tmp_path))
    with pytest.raises(_report.ReportError):
        _report.resolve_run_dir(str(tmp_path))


def test_resolve_run_dir_picks_the_newest_run(tmp_path):
    _run_dir(tmp_path, "20260101T000000Z-1-aaaaaa", [_task(1, "a")])
    newest = _run_dir(tmp_path, "20260102T000000Z-1-bbbbbb", [_task(1, "a")])
    assert _report.resolve_run_dir(str(tmp_path)) == newest
    assert _report.resolve_run_dir(newest) == newest


def test_rendered_names_are_text_and_the_script_is_admitted(tmp_path):
    tasks = [_task(1, HOSTILE, play=HOSTILE), _task(2, "plain")]
    hosts = [dict(_task(1, HOSTILE, play=HOSTILE), scope="host", host=HOSTILE, status="ok", item=None, attribution="host")]
    series = [(i * 0.1, 50.0, 10 * 2**20, 3, 1 if i < 10 else 2) for i in range(25)]
    html = _report.render_report(_report.load_run(_run_dir(tmp_path, "r", tasks, series, hosts)))
    assert "<script>document.title" not in html
    assert html.count("<script") == 2
    assert "&lt;/script&gt;&lt;script&gt;document.title=&#39;x&#39;&lt;/script&gt;" in html
    # The CSP's hash is the hash of the inline script as written.
    script = html.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert "script-src 'sha256-%s'" % digest in html
    assert not re.search(r"\b(src|href)\s*=", html)


def test_write_report_is_private_and_counts_tasks(tmp_path):
    directory = _run_dir(tmp_path, "r", [_task(1, "a"), _task(2, "b")])
    result = _report.write_report(directory)
    assert result["tasks"] == 2
    assert stat.S_IMODE(os.stat(result["dest"]).st_mode) == 0o600
    assert result["dest"] == os.path.join(directory, "report.html")
    checked = _report.write_report(directory, dest=str(tmp_path / "none.html"), write=False)
    assert checked["dest"] == str(tmp_path / "none.html") and checked["size"] > 0
    assert not (tmp_path / "none.html").exists()


def test_report_without_series_says_so(tmp_path):
    outputs = RunOutputs(str(tmp_path), "r", ("records",))
    outputs.record(_task(1, "a"))
    outputs.close()
    html = _report.render_report(_report.load_run(outputs.directory))
    assert 'id="timeline"' not in html
    assert "No time series" in html
    assert html.count('class="bar-row"') == 1
