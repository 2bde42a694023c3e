#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: report
short_description: Writes the HTML report of a profiled run, optionally compared with a baseline run
version_added: 0.1.0
description:
  - Renders the self-contained HTML report of one run of the
    P(perfstats.profiler.profile_resources#callback) callback from its run directory (the files
    C(summary.json), C(records.jsonl) and C(series.csv)), the same report the callback writes when its
    C(outputs) option lists C(html).
  - With O(baseline_dir), the report also compares the run with an earlier run of the same playbook, task by
    task (matched by play, task name and occurrence), and marks the tasks whose figures grew.
  - The report opens without network access; it needs no file besides itself.
  - Runs on the controller, where the run directories are; it is an action and never runs on a target.
author:
  - perfstats.profiler contributors (@perfstats)
requirements:
  - C(jinja2), as installed with ansible-core.
attributes:
  check_mode:
    description: Supported; the report is rendered but not written.
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
  action:
    description: Runs as an action plugin on the controller.
    support: full
options:
  run_dir:
    description:
      - The run directory to report on, for example C(~/.ansible/perfstats/20260102T030405Z-1234-abcdef).
      - A directory that holds run directories (the callback's C(output_dir)) stands for its newest run.
    type: path
    required: true
  baseline_dir:
    description:
      - A run directory to compare O(run_dir) with. The same shortcut as for O(run_dir) applies.
    type: path
  dest:
    description:
      - Where to write the report. Defaults to C(report.html) in the run directory, or to
        C(compare-<baseline run id>.html) in it when O(baseline_dir) is given.
      - The file is written with mode 0600.
    type: path
  threshold:
    description:
      - With O(baseline_dir), the growth in percent of the baseline's figure above which a task's figure counts as
        a regression (it must also grow by more than a small absolute floor, to leave noise on tiny tasks out).
    type: float
    default: 25
notes:
  - Reading the run directory needs read access to it; the callback creates run directories readable by their
    owner only.
seealso:
  - name: The HTML report
    description: What the report shows and how to read it.
    link: https://github.com/perfstats/perfstats.profiler/blob/main/docs/report.md
"""

EXAMPLES = r"""
- name: Report on the newest run
  perfstats.profiler.report:
    run_dir: ~/.ansible/perfstats

- name: Compare a run with a baseline and fail on regressions
  perfstats.profiler.report:
    run_dir: ~/.ansible/perfstats/20260102T040000Z-2345-bcdef0
    baseline_dir: ~/.ansible/perfstats/20260101T040000Z-1234-abcdef
    dest: /tmp/compare.html
  register: compared
  failed_when: compared.regressions | length > 0

# From the command line:
# ansible localhost -m perfstats.profiler.report -a "run_dir=~/.ansible/perfstats baseline_dir=... dest=report.html"
"""

RETURN = r"""
dest:
  description: The report's path.
  returned: always
  type: str
run_dir:
  description: The run directory reported on (after resolving a directory of runs to its newest run).
  returned: always
  type: str
baseline_dir:
  description: The baseline run directory (after resolving), when one was given.
  returned: when O(baseline_dir) is given
  type: str
tasks:
  description: The number of task records in the report.
  returned: always
  type: int
size:
  description: The report's size in bytes.
  returned: always
  type: int
regressions:
  description: The tasks with a regressed figure, each with C(task), C(play), C(occurrence) and C(metrics).
  returned: when O(baseline_dir) is given
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_dir=dict(type="path", required=True),
            baseline_dir=dict(type="path"),
            dest=dict(type="path"),
            threshold=dict(type="float", default=25.0),
        ),
        supports_check_mode=True,
    )
    module.fail_json(msg="perfstats.profiler.report runs as an action on the controller; this module file only documents it")


if __name__ == "__main__":
    main()
