# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""Where a run's files go when ansible-runner runs the playbook.

ansible-runner tells the ``ansible-playbook`` it starts where the job's
artifact directory is (``AWX_ISOLATED_DATA_DIR``; its own event writer puts
its event files beneath it).  When the user has not chosen an output
directory, the profiler writes its run directory beneath that artifact
directory, in ``perfstats/``: the files then travel with the job's other
artifacts (also back from a remote worker), and the
``perfstats-profiler-runner`` plugin finds them without configuration.

Nothing here imports Ansible.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

RUNNER_ARTIFACT_ENV = "AWX_ISOLATED_DATA_DIR"
RUNNER_SUBDIR = "perfstats"


def runner_output_dir(environ: Mapping[str, str]) -> str | None:
    """The output directory for a run under ansible-runner, or None outside it."""
    artifact_dir = (environ.get(RUNNER_ARTIFACT_ENV) or "").strip()
    if not artifact_dir or not os.path.isabs(artifact_dir):
        return None
    return os.path.join(artifact_dir, RUNNER_SUBDIR)


def choose_output_dir(configured: str, origin: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """The output directory to use and where that choice came from.

    An output directory the user set (environment or ini) always wins; only
    the default gives way to the job's artifact directory.
    """
    if origin == "default" or origin.startswith("default "):
        runner_dir = runner_output_dir(environ)
        if runner_dir is not None:
            return runner_dir, "default (ansible-runner artifact directory)"
    return configured, origin
