# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""perfstats.profiler.report: writes a run's HTML report on the controller (see the module's documentation)."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.perfstats.profiler.plugins.plugin_utils._report import (
    REGRESSION_PCT,
    ReportError,
    resolve_run_dir,
    write_report,
)

ARGUMENT_SPEC = {
    "run_dir": {"type": "path", "required": True},
    "baseline_dir": {"type": "path"},
    "dest": {"type": "path"},
    "threshold": {"type": "float", "default": REGRESSION_PCT},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._arguments()
        try:
            run_dir = resolve_run_dir(args["run_dir"])
            baseline_dir = resolve_run_dir(args["baseline_dir"]) if args.get("baseline_dir") else None
            threshold = float(args["threshold"])
            if not 0 <= threshold < 1e6:
                raise ReportError("threshold must be a percentage of 0 or more, not %s" % args["threshold"])
            outcome = write_report(
                run_dir,
                dest=args.get("dest"),
                baseline_dir=baseline_dir,
                threshold=threshold,
                write=not self._task.check_mode,
            )
        except (ReportError, OSError, ValueError) as exc:
            raise AnsibleActionFail("cannot write the report: %s" % exc) from exc
        result.update(outcome)
        result["run_dir"] = os.path.abspath(run_dir)
        if baseline_dir:
            result["baseline_dir"] = os.path.abspath(baseline_dir)
        result["changed"] = not self._task.check_mode
        return result

    def _arguments(self) -> dict[str, Any]:
        if hasattr(self, "validate_argument_spec"):  # ansible-core 2.11 and later
            return self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        raw = dict(self._task.args)
        unknown = sorted(set(raw) - set(ARGUMENT_SPEC))
        if unknown:
            raise AnsibleActionFail("unsupported parameter(s): %s" % ", ".join(unknown))
        if not raw.get("run_dir"):
            raise AnsibleActionFail("missing required argument: run_dir")
        args: dict[str, Any] = {}
        for name, spec in ARGUMENT_SPEC.items():
            value = raw.get(name, spec.get("default"))
            if value is not None and spec["type"] == "path":
                value = os.path.expanduser(os.path.expandvars(str(value)))
            args[name] = value
        return args
