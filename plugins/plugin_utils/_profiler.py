# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""What the callback drives: validated options, a session, its files, the recap.

Nothing here imports Ansible; the callback hands in plain option values (and
where each came from) and plain strings for tasks, plays and hosts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.perfstats.profiler.plugins.module_utils._cgroups import BACKENDS
from ansible_collections.perfstats.profiler.plugins.plugin_utils._outputs import (
    DEFAULT_OUTPUTS,
    OUTPUT_KINDS,
    RunOutputs,
)
from ansible_collections.perfstats.profiler.plugins.plugin_utils._recap import SORT_KEYS, recap_lines, top_tasks
from ansible_collections.perfstats.profiler.plugins.plugin_utils._runner_support import choose_output_dir
from ansible_collections.perfstats.profiler.plugins.plugin_utils._session import (
    Record,
    Session,
    SessionError,
    SessionOptions,
)

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "backend": "auto",
    "base_group": None,
    "sample_interval": 0.05,
    "output_dir": "~/.ansible/perfstats",
    "outputs": list(DEFAULT_OUTPUTS),
    "recap": True,
    "recap_top": 10,
    "sort": "cpu",
}
INTERVAL_BOUNDS = (0.005, 60.0)
TOP_BOUNDS = (0, 1000)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y", "t"):
        return True
    if text in ("0", "false", "no", "off", "n", "f", ""):
        return False
    return None


class Config:
    """Option values after validation, with where each came from."""

    def __init__(self, raw: Mapping[str, Any], origins: Mapping[str, str]) -> None:
        self.problems: list[str] = []
        self.origins = {name: origins.get(name, "default") for name in DEFAULTS}
        self.values: dict[str, Any] = {}
        for name, default in DEFAULTS.items():
            value = raw.get(name, default)
            try:
                checked = getattr(self, "_check_" + name)(value)
            except (TypeError, ValueError) as exc:
                self.problems.append("invalid %s %r (%s): using %r" % (name, value, exc, default))
                self.origins[name] = "default (replaced an invalid value from %s)" % self.origins[name]
                checked = default
            self.values[name] = checked

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: {"value": self.values[name], "origin": self.origins[name]} for name in DEFAULTS}

    @staticmethod
    def _check_enabled(value: Any) -> bool:
        checked = _as_bool(value)
        if checked is None:
            raise ValueError("not a boolean")
        return checked

    _check_recap = _check_enabled

    @staticmethod
    def _check_backend(value: Any) -> str:
        text = str(value or "auto").strip().lower()
        if text not in BACKENDS:
            raise ValueError("one of %s" % ", ".join(BACKENDS))
        return text

    @staticmethod
    def _check_base_group(value: Any) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        text = str(value).strip()
        if ".." in text.split("/") or "\n" in text:
            raise ValueError("a cgroup path without '..', such as /perfstats.slice/ansible or perfstats-base")
        return text

    @staticmethod
    def _check_sample_interval(value: Any) -> float:
        number = float(value)
        low, high = INTERVAL_BOUNDS
        if not low <= number <= high:  # also false for NaN
            raise ValueError("between %g and %g seconds" % (low, high))
        return number

    @staticmethod
    def _check_output_dir(value: Any) -> str:
        if not value:
            raise ValueError("empty")
        return os.path.abspath(os.path.expanduser(str(value)))

    @staticmethod
    def _check_outputs(value: Any) -> list[str]:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        kinds = [str(item).strip().lower() for item in items if str(item).strip()]
        unknown = [kind for kind in kinds if kind not in OUTPUT_KINDS]
        if unknown:
            raise ValueError("unknown %s; known: %s" % (", ".join(unknown), ", ".join(OUTPUT_KINDS)))
        return kinds

    @staticmethod
    def _check_recap_top(value: Any) -> int:
        number = int(str(value).strip())
        if not TOP_BOUNDS[0] <= number <= TOP_BOUNDS[1]:
            raise ValueError("between %d and %d" % TOP_BOUNDS)
        return number

    @staticmethod
    def _check_sort(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in SORT_KEYS:
            raise ValueError("one of %s" % ", ".join(SORT_KEYS))
        return text


class Profiler:
    """One playbook run's profiling, from start to recap."""

    def __init__(
        self,
        raw: Mapping[str, Any],
        origins: Mapping[str, str],
        warn: Callable[[str], None],
        verbose: Callable[[str], None] | None = None,
    ) -> None:
        self.config = Config(raw, origins)
        self._warn = warn
        self._verbose = verbose or (lambda msg: None)
        self.session: Session | None = None
        self.outputs: RunOutputs | None = None
        self.playbook = ""
        self.summary: dict[str, Any] | None = None

    def start(self, playbook: str) -> bool:
        """Begin profiling; answers False when it stays dormant."""
        for problem in self.config.problems:
            self._warn(problem)
        if not self.config["enabled"]:
            self._verbose("perfstats.profiler: dormant (enabled is false, from %s)" % self.config.origins["enabled"])
            return False
        self.playbook = playbook
        options = SessionOptions(
            backend=self.config["backend"],
            base_group=self.config["base_group"],
            interval=self.config["sample_interval"],
        )
        session = Session(options, emit=self._record, sample_sink=self._sample, warn=self._warn)
        try:
            session.start()
        except SessionError as exc:
            session.cleanup()
            self._warn("profiling unavailable for this run: %s" % exc)
            return False
        self.session = session
        session.on_abort = self._write_summary
        # Under ansible-runner the default output directory gives way to the
        # job's artifact directory, so the files travel with the job.
        out, origin = choose_output_dir(self.config["output_dir"], self.config.origins["output_dir"], os.environ)
        self.config.values["output_dir"], self.config.origins["output_dir"] = out, origin
        kinds = self.config["outputs"]
        if kinds:
            try:
                self.outputs = RunOutputs(self.config["output_dir"], session.run_id, kinds)
            except OSError as exc:
                self._warn(
                    "cannot write to output_dir %s (%s): the run is profiled without files" % (self.config["output_dir"], exc)
                )
        self._verbose(
            "perfstats.profiler: profiling with backend %s%s"
            % (
                session.backend,
                "" if self.outputs is None else ", files in %s" % self.outputs.directory,
            )
        )
        return True

    def _record(self, record: Record) -> None:
        if self.outputs is not None:
            self.outputs.record(record)

    def _sample(self, row: tuple) -> None:
        if self.outputs is not None:
            self.outputs.sample(row)

    def task_start(self, uuid: str, name: str, play: str, kind: str) -> None:
        if self.session is not None:
            self.session.open_window(uuid, name, play, kind)

    def host_start(self, uuid: str, host: str) -> None:
        if self.session is not None:
            self.session.host_started(uuid, host)

    def host_result(self, uuid: str, host: str, status: str, item: bool = False) -> None:
        if self.session is not None:
            self.session.host_result(uuid, host, status, item)

    def _write_summary(self, core: Mapping[str, Any]) -> dict[str, Any]:
        session = self.session
        tasks = session.tasks if session is not None else []
        summary = dict(core)
        summary["playbook"] = self.playbook
        summary["config"] = self.config.as_dict()
        summary["output_dir"] = None if self.outputs is None else self.outputs.directory
        summary["top_tasks"] = [dict(r) for r in top_tasks(tasks, self.config["sort"], self.config["recap_top"])]
        self.summary = summary
        if self.outputs is not None:
            try:
                self.outputs.summary(summary)
            except OSError as exc:
                self._warn("cannot write the summary: %s" % exc)
            self.outputs.close()
            if "html" in self.outputs.kinds:
                try:
                    from ansible_collections.perfstats.profiler.plugins.plugin_utils._report import write_report

                    write_report(self.outputs.directory, summary=summary, tasks=tasks)
                except Exception as exc:  # noqa: BLE001 - a report never fails the run
                    self._warn("cannot write the HTML report: %s" % exc)
        return summary

    def finish(self) -> list[str]:
        """End of the run: the recap's lines (empty when the recap is off)."""
        if self.session is None:
            return []
        summary = self._write_summary(self.session.finish(complete=True))
        if not self.config["recap"]:
            return []
        return recap_lines(summary, summary["top_tasks"], self.config["sort"])

    def abort(self) -> None:
        if self.session is not None:
            self.session.abort()
        elif self.outputs is not None:
            self.outputs.close()
