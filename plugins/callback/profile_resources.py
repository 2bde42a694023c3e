# -*- coding: utf-8 -*-
# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file must stay importable on every Ansible and Python the collection
# claims, including Python 2.7: the measuring code is imported lazily, and
# where it cannot load the callback says so once (at -v) and does nothing.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: profile_resources
type: aggregate
short_description: Measures the CPU, memory, PIDs and time every task costs on the controller
version_added: 0.1.0
description:
  - Measures what each task of a playbook run costs on the controller, from Linux cgroups (v2, v1 and
    hybrid layouts), with a process-tree fallback where no cgroup can be used.
  - The run gets a group of its own beneath the controller's group (or beneath O(base_group)), so
    simultaneous runs on one host never mix. Each task window gets a fresh child group, so memory and
    PID peaks of a window come from the kernel's own peak counters where the kernel keeps them.
  - Writes one record per task window (and per host result) as JSON lines, a summary, a time series,
    and prints a recap after the PLAY RECAP.
  - Never changes the outcome of a run; any problem gives one warning and profiling stops.
author:
  - perfstats.profiler contributors (@perfstats)
requirements:
  - Linux with cgroups for kernel-exact figures; C(psutil) for the process-tree fallback.
  - Python 3.8 or newer on the controller; older controllers run unprofiled.
options:
  enabled:
    description:
      - Switch. When false the callback stays dormant (no group, no thread, no output), so a
        host-wide configuration can list the callback and leave profiling off until a run turns it on.
    type: bool
    default: true
    env:
      - name: PERFSTATS_ENABLED
    ini:
      - section: callback_profile_resources
        key: enabled
  backend:
    description:
      - C(auto) picks, per metric, the cgroup hierarchy that has its controller (cgroup v2 first,
        then v1) and falls back to the process tree where no group can be made.
      - C(cgroup2), C(cgroup1) or C(process) force one; an unavailable forced backend warns and
        falls back to the process tree. Any other value warns and uses C(auto).
    type: str
    default: auto
    env:
      - name: PERFSTATS_BACKEND
    ini:
      - section: callback_profile_resources
        key: backend
  base_group:
    description:
      - A cgroup group prepared by an administrator or by the P(perfstats.profiler.controller#role) role,
        beneath which run groups are created instead of beneath the controller's own group.
      - An absolute path (for example C(/perfstats.slice/ansible)) is taken from the root of each
        hierarchy; a relative one (for example C(perfstats-base)) beneath the controller's own group in
        each hierarchy.
      - A base group that does not exist or cannot be used gives a warning and the controller's own
        group is used.
    type: str
    env:
      - name: PERFSTATS_BASE_GROUP
    ini:
      - section: callback_profile_resources
        key: base_group
  sample_interval:
    description:
      - Seconds between samples of the time series (and of metrics the kernel keeps no peak of).
      - Between 0.005 and 60; other values give a warning and the default.
    type: str
    default: "0.05"
    env:
      - name: PERFSTATS_SAMPLE_INTERVAL
    ini:
      - section: callback_profile_resources
        key: sample_interval
  output_dir:
    description:
      - Directory beneath which each run writes its files into a sub-directory named after the run
        (UTC start time, process id and a random suffix, so names sort by time and never clash).
      - Directories are created with mode 0700 and files with mode 0600.
      - An unwritable directory gives a warning and the run is profiled without files.
    type: path
    default: ~/.ansible/perfstats
    env:
      - name: PERFSTATS_OUTPUT_DIR
    ini:
      - section: callback_profile_resources
        key: output_dir
  outputs:
    description:
      - Files to write. V(records) (JSON lines, one record per task window and per host result),
        V(summary) (JSON), V(series) (CSV time series), V(csv) (one CSV row per task window),
        V(html) (C(report.html), a self-contained report written when the run ends).
      - An empty list writes no files.
    type: list
    elements: str
    default: [records, summary, series]
    env:
      - name: PERFSTATS_OUTPUTS
    ini:
      - section: callback_profile_resources
        key: outputs
  recap:
    description: Print the recap after the PLAY RECAP. When false, stdout is exactly what it would be without this callback.
    type: bool
    default: true
    env:
      - name: PERFSTATS_RECAP
    ini:
      - section: callback_profile_resources
        key: recap
  recap_top:
    description: Number of tasks listed in the recap (0 to 1000; other values give a warning and the default).
    type: str
    default: "10"
    env:
      - name: PERFSTATS_RECAP_TOP
    ini:
      - section: callback_profile_resources
        key: recap_top
  sort:
    description: Order of the recap's task list, one of V(cpu), V(memory), V(pids), V(duration).
    type: str
    default: cpu
    env:
      - name: PERFSTATS_SORT
    ini:
      - section: callback_profile_resources
        key: sort
notes:
  - Enable with C(callbacks_enabled = perfstats.profiler.profile_resources) in C([defaults]) of
    C(ansible.cfg) (C(callback_whitelist) on Ansible 2.9 and 2.10).
  - The configuration is read once, when the playbook starts; changes made while it runs apply to the next run.
  - Options take strings where a wrong value must not stop a run; they are validated when the run starts.
seealso:
  - name: perfstats.profiler documentation
    description: Decision table of backends, the record format and the meaning of each figure.
    link: https://github.com/perfstats/perfstats.profiler/tree/main/docs
"""

import sys

from ansible.plugins.callback import CallbackBase

Profiler = None  # the measuring code, bound below where it can be imported
_IMPORT_ERROR = None
if sys.version_info < (3, 8):
    _IMPORT_ERROR = "Python %d.%d is older than 3.8" % sys.version_info[:2]
elif not sys.platform.startswith("linux"):
    _IMPORT_ERROR = "platform %s is not Linux" % sys.platform
else:
    try:
        from ansible_collections.perfstats.profiler.plugins.plugin_utils._profiler import Profiler
    except Exception as exc:  # noqa: BLE001 - any failure to load means "unavailable", never a traceback
        _IMPORT_ERROR = "%s: %s" % (type(exc).__name__, exc)

OPTION_NAMES = ("enabled", "backend", "base_group", "sample_interval", "output_dir", "outputs", "recap", "recap_top", "sort")


def _host_name(result):
    host = getattr(result, "host", None)
    if host is None:
        host = getattr(result, "_host", None)
    name = getattr(host, "name", None) or getattr(host, "get_name", lambda: None)()
    return name if name is not None else str(host)


def _result_task(result):
    task = getattr(result, "task", None)
    if task is None:
        task = getattr(result, "_task", None)
    return task


def _task_uuid(task):
    return str(getattr(task, "_uuid", None) or id(task))


class CallbackModule(CallbackBase):
    """Glue: maps Ansible's events to a profiling session, nothing more."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "perfstats.profiler.profile_resources"
    CALLBACK_NEEDS_ENABLED = True
    CALLBACK_NEEDS_WHITELIST = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._profiler = None
        self._told_unavailable = False
        self._play_name = ""

    # ---- configuration ----
    def _option_origins(self):
        values = {}
        origins = {}
        for name in OPTION_NAMES:
            try:
                values[name] = self.get_option(name)
            except Exception:  # noqa: BLE001
                values[name] = None
            origins[name] = self._origin(name)
        return values, origins

    def _origin(self, name):
        try:
            from ansible import constants as C

            _value, origin = C.config.get_config_value_and_origin(
                name, plugin_type="callback", plugin_name=getattr(self, "_load_name", self.CALLBACK_NAME)
            )
        except Exception:  # noqa: BLE001 - origin is informative only
            return "unknown"
        origin = str(origin)
        if origin.startswith("env"):
            return origin.replace(":", "", 1) if origin.startswith("env:") else origin
        if origin in ("default", "direct"):
            return origin
        return "ini: %s" % origin

    # ---- events ----
    def v2_playbook_on_start(self, playbook):
        if self._profiler is not None:
            return  # several playbooks in one command: one run, one session
        if _IMPORT_ERROR is not None:
            self._unavailable(_IMPORT_ERROR)
            return
        try:
            values, origins = self._option_origins()
            profiler = Profiler(values, origins, warn=self._warn, verbose=self._display.vv)
            name = getattr(playbook, "_file_name", None) or ""
            if profiler.start(name):
                self._profiler = profiler
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def _unavailable(self, why):
        if not self._told_unavailable:
            self._told_unavailable = True
            self._display.v("perfstats.profiler: profiling unavailable (%s)" % why)

    def v2_playbook_on_play_start(self, play):
        try:
            self._play_name = play.get_name()
        except Exception:  # noqa: BLE001
            self._play_name = ""

    def _task_start(self, task, kind):
        profiler = self._profiler
        if profiler is None:
            return
        try:
            if getattr(task, "no_log", False):
                name = "(no_log task)"
            else:
                name = task.get_name()
            profiler.task_start(_task_uuid(task), name, self._play_name, kind)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task, "task")

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task, "handler")

    def v2_runner_on_start(self, host, task):
        profiler = self._profiler
        if profiler is None:
            return
        try:
            profiler.host_start(_task_uuid(task), getattr(host, "name", None) or str(host))
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def _result(self, result, status, item=False):
        profiler = self._profiler
        if profiler is None:
            return
        try:
            profiler.host_result(_task_uuid(_result_task(result)), _host_name(result), status, item)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def v2_runner_on_ok(self, result, **kwargs):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result, **kwargs):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._result(result, "unreachable")

    def v2_runner_item_on_ok(self, result):
        self._result(result, "ok", item=True)

    def v2_runner_item_on_failed(self, result):
        self._result(result, "failed", item=True)

    def v2_runner_item_on_skipped(self, result):
        self._result(result, "skipped", item=True)

    def v2_playbook_on_stats(self, stats):
        profiler = self._profiler
        if profiler is None:
            return
        self._profiler = None
        try:
            lines = profiler.finish()
        except Exception as exc:  # noqa: BLE001
            self._profiler = profiler
            self._fail(exc)
            return
        if lines:
            self._display.banner("PERFSTATS RECAP")
            for line in lines:
                self._display.display(line)
            self._display.display("")

    # ---- the boundary ----
    def _warn(self, message):
        self._display.warning("perfstats.profiler: %s" % message)

    def _fail(self, exc):
        profiler, self._profiler = self._profiler, None
        self._warn("profiling stopped for this run: %s: %s" % (type(exc).__name__, exc))
        if profiler is not None:
            try:
                profiler.abort()
            except Exception:  # noqa: BLE001
                pass
