"""The HTML report of real runs, loaded in a real headless Chromium.

CI needs Chromium for these tests: ``apt-get install -y chromium`` (Debian).
Without it they are skipped, and the skip says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from harness import BIN, REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH: install it (Debian: apt-get install -y chromium) to load reports"
)
ARTIFACTS = REPO / "tests" / "output" / "report"

INVENTORY = """\
localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"
second ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"
"""

PLAYBOOK = """
- name: Work on the controller
  hosts: all
  gather_facts: false
  tasks:
    - name: cheap
      ansible.builtin.command: "true"
      changed_when: false
    - name: burn
      run_once: true
      ansible.builtin.command:
        argv:
          - "{{ ansible_playbook_python }}"
          - -c
          - |
            import time
            end = time.process_time() + float({{ burn_s | default(0.6) }})
            while time.process_time() < end:
                pass
      changed_when: false
    - name: hold memory
      when: inventory_hostname == 'localhost'
      ansible.builtin.command: >-
        {{ ansible_playbook_python }} -c "import time; b = bytearray(120 * 1024 * 1024); time.sleep(0.3)"
      changed_when: false
    - name: loop
      ansible.builtin.command: "echo {{ item }}"
      loop: [1, 2, 3]
      changed_when: true
      notify: settle
  handlers:
    - name: settle
      ansible.builtin.command: "true"

- name: Second play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: fan out
      ansible.builtin.shell: "for i in $(seq 12); do sleep 0.4 & done; wait"
      changed_when: false
"""

HTML_SETTINGS = {"outputs": "records,summary,series,html", "sample_interval": "0.02"}


def chromium(page: Path, workdir: Path, screenshot: Path | None = None, height: int = 2400) -> str:
    """The DOM of ``page`` after Chromium loaded it (and ran its script); optionally a screenshot."""
    assert CHROMIUM is not None
    profile = workdir / ("chromium-profile-%s" % page.stem)
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--user-data-dir=%s" % profile,
        "--window-size=1280,%d" % height,
    ]
    done = subprocess.run([*base, "--dump-dom", page.as_uri()], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = subprocess.run(
            [*base, "--screenshot=%s" % screenshot, page.as_uri()], check=False, capture_output=True, text=True, timeout=120
        )
        assert shot.returncode == 0 and screenshot.is_file(), shot.stderr
    return done.stdout


def element(dom: str, element_id: str) -> str:
    """The opening tag of the element with ``element_id``."""
    found = re.search(r"<[a-z]+[^>]*\bid=\"%s\"[^>]*>" % re.escape(element_id), dom)
    assert found, "no element #%s in the DOM" % element_id
    return found.group(0)


def attribute(tag: str, name: str) -> str | None:
    found = re.search(r"\b%s=\"([^\"]*)\"" % re.escape(name), tag)
    return found.group(1) if found else None


def tbody_rows(dom: str, table_id: str) -> list[str]:
    start = dom.index('id="%s"' % table_id)
    body = dom[dom.index("<tbody>", start) : dom.index("</tbody>", start)]
    return body.split("<tr")[1:]


def no_external_references(html: str) -> None:
    """Nothing in the page would fetch from the network (or from anywhere)."""
    assert not re.search(r"\b(src|href|action|srcset|poster|data)\s*=\s*[\"']?\s*[a-z]+:", html, re.I)
    assert "url(" not in html
    assert "@import" not in html
    assert "default-src 'none'" in html


def adhoc_report(collections: Path, workdir: Path, args: str) -> dict:
    """``ansible localhost -m perfstats.profiler.report -a ARGS``: the module's result."""
    cfg = workdir / "adhoc.cfg"
    cfg.write_text("[defaults]\nstdout_callback = ansible.builtin.minimal\nretry_files_enabled = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PERFSTATS_"))}
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"),
        PYTHONWARNINGS="ignore",
    )
    done = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "perfstats.profiler.report", "-a", args],
        check=False,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # The minimal callback: "localhost | CHANGED => {json}".
    marker = done.stdout.find("localhost | ")
    assert marker >= 0, done.stdout + done.stderr
    result = json.loads(done.stdout[done.stdout.index("=>", marker) + 2 :])
    result["_rc"] = done.returncode
    result["_status"] = done.stdout[marker + len("localhost | ") :].split()[0]
    return result


@needs_chromium
def test_report_of_a_real_run_loads_in_chromium(harness):
    run = harness.run(PLAYBOOK, settings=HTML_SETTINGS, inventory=INVENTORY)
    assert run.rc == 0, run.stdout + run.stderr
    assert "cannot write the HTML report" not in run.stdout + run.stderr
    page = run.run_dir / "report.html"
    assert page.is_file()
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    html = page.read_text()
    no_external_references(html)

    tasks = [r for r in run.records() if r["scope"] == "task"]
    hosts = {r["host"] for r in run.records() if r["scope"] == "host"}
    assert hosts == {"localhost", "second"}
    count = len(tasks)
    dom = chromium(page, run.workdir, ARTIFACTS / "report-run.png")

    # The script ran (the CSP admitted it) and read the data it was given.
    assert 'data-ready="1"' in element(dom, "perfstats-data") or 'data-ready="1"' in dom[: dom.index("<head")]
    svg = element(dom, "timeline")
    assert attribute(svg, "data-tasks") == str(count)
    assert attribute(svg, "data-cursor-tasks") == str(count)
    assert attribute(svg, "data-samples") == str(run.summary()["samples"])
    assert dom.count('<rect class="band') == count
    lines = re.findall(r"<polyline class=\"line (\w+)\" points=\"([^\"]+)\"", dom)
    assert [kind for kind, _points in lines] == ["cpu", "mem", "pids"]
    assert all(len(points.split()) >= 2 for _kind, points in lines)
    # One bar row and one table row per task record, in run order.
    assert dom.count('class="bar-row"') == count
    rows = tbody_rows(dom, "tasks")
    assert len(rows) == count
    for row, task in zip(rows, tasks):
        label = ("handler: " if task["task_kind"] == "handler" else "") + task["task_name"]
        assert ">%s<" % label in row
        assert ">%.2f<" % task["cpu_total_s"] in row
    burn = next(row for row in rows if ">burn<" in row)
    assert ">%.2f<" % next(t for t in tasks if t["task_name"] == "burn")["cpu_total_s"] in burn
    # The host dimension.
    host_rows = tbody_rows(dom, "hosts")
    assert [re.search(r"<td[^>]*>([^<]*)</td>", r).group(1) for r in host_rows] == ["localhost", "second"]
    # The configuration with origins.
    config = tbody_rows(dom, "config")
    assert any(">outputs<" in r and "records, summary, series, html" in r and "ini" in r for r in config)


HOSTILE_INVENTORY = """\
all:
  hosts:
    "evil\\"<b>host</b>'<!--":
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

HOSTILE_PLAYBOOK = r"""
- name: "</script><script>document.title='owned by play'</script> \"quoted\" play"
  hosts: all
  gather_facts: false
  tasks:
    - name: "<script>document.title='owned by task'</script>"
      ansible.builtin.command: "true"
      changed_when: false
    - name: "\"'><img src=x onerror=\"document.title='owned by img'\">"
      ansible.builtin.command: "true"
      changed_when: false
    - name: "<!-- <script> & \u2028 ]]> </style>"
      ansible.builtin.command: "true"
      changed_when: false
"""


@needs_chromium
def test_hostile_names_stay_text(harness):
    # A YAML inventory (the harness's own is INI) given on the command line.
    run = harness.run(HOSTILE_PLAYBOOK, settings=HTML_SETTINGS, files={"hosts.yml": HOSTILE_INVENTORY}, args=["-i", "hosts.yml"])
    assert run.rc == 0, run.stdout + run.stderr
    tasks = [r for r in run.records() if r["scope"] == "task"]
    names = [t["task_name"] for t in tasks]
    assert len(names) == 3 and "<script>" in names[0] and "onerror" in names[1]
    host = next(r["host"] for r in run.records() if r["scope"] == "host")
    assert "<b>" in host and '"' in host
    page = run.run_dir / "report.html"
    html = page.read_text()
    # Two scripts: the escaped data and the report's own.
    assert html.count("<script") == 2
    # The data for the script holds the names, with no character that could end the element.
    data_text = html.split('<script type="application/json" id="perfstats-data">')[1].split("</script>")[0]
    assert not set("<>&\u2028") & set(data_text)
    data = json.loads(data_text)
    assert [task[3] for task in data["timeline"]["tasks"]] == names
    assert data["timeline"]["tasks"][0][4].startswith("</script><script>")

    dom = chromium(page, run.workdir, ARTIFACTS / "report-hostile.png", height=1400)
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title == "perfstats report: site.yml"
    assert "<img" not in dom
    assert 'data-ready="1"' in dom[: dom.index("<head")]
    assert attribute(element(dom, "timeline"), "data-cursor-tasks") == "3"
    rows = tbody_rows(dom, "tasks")
    assert len(rows) == 3
    assert "&lt;script&gt;document.title='owned by task'&lt;/script&gt;" in rows[0]
    assert "onerror" in rows[1] and "&lt;img src=x" in rows[1]
    assert "&lt;/script&gt;&lt;script&gt;document.title='owned by play'" in rows[0]
    assert "evil\"&lt;b&gt;host&lt;/b&gt;'&lt;!--" in "".join(tbody_rows(dom, "hosts"))


def test_compare_two_runs_with_the_report_action(harness, collections_path):
    fast = harness.run(PLAYBOOK, settings={"sample_interval": "0.02"}, args=["-e", "burn_s=0.1"])
    slow = harness.run(PLAYBOOK, settings=HTML_SETTINGS, args=["-e", "burn_s=1.5"])
    assert fast.rc == 0 and slow.rc == 0, fast.stdout + slow.stdout
    # The callback writes a report only when told to.
    assert not (fast.run_dir / "report.html").exists()
    assert (slow.run_dir / "report.html").is_file()

    # A report of the fast run afterwards, from its output directory (its newest run).
    made = adhoc_report(collections_path, fast.workdir, "run_dir=%s" % fast.output_dir)
    assert made["_rc"] == 0, made
    assert made["run_dir"] == str(fast.run_dir)
    assert made["dest"] == str(fast.run_dir / "report.html")
    assert made["tasks"] == len([r for r in fast.records() if r["scope"] == "task"])
    assert (fast.run_dir / "report.html").is_file()

    dest = slow.workdir / "compare.html"
    compared = adhoc_report(
        collections_path, slow.workdir, "run_dir=%s baseline_dir=%s dest=%s" % (slow.run_dir, fast.run_dir, dest)
    )
    assert compared["_rc"] == 0, compared
    assert compared["changed"] is True and compared["_status"] == "CHANGED"
    regressed = {r["task"]: r["metrics"] for r in compared["regressions"]}
    assert "cpu_total_s" in regressed.get("burn", []), compared["regressions"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    html = dest.read_text()
    no_external_references(html)
    rows = html[html.index('id="comparison-table"') :]
    rows = rows[: rows.index("</tbody>")].split("<tr")[2:]
    assert len(rows) == len([r for r in slow.records() if r["scope"] == "task"])
    burn = next(r for r in rows if ">burn<" in r)
    assert 'class="regressed' in burn
    if CHROMIUM is not None:
        dom = chromium(dest, slow.workdir, ARTIFACTS / "report-compare.png")
        assert 'data-ready="1"' in dom[: dom.index("<head")]
        assert element(dom, "comparison")
    else:
        print("Chromium not found: the comparison page was not loaded in a browser")


def test_report_action_fails_clearly_on_a_wrong_directory(collections_path, tmp_path):
    result = adhoc_report(collections_path, tmp_path, "run_dir=%s" % tmp_path)
    assert result["_rc"] != 0
    assert result["_status"] == "FAILED!"
    assert "neither a run directory" in result["msg"]
