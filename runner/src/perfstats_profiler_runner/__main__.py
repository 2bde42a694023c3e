# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``perfstats-runner-apply``: figures of a streamed job into its processed job events.

Run it on the processing side of ``ansible-runner transmit | worker | process``
once ``ansible-runner process`` has finished, with the job's artifact
directory (``<private data dir>/artifacts/<ident>``).
"""

from __future__ import annotations

import argparse
import os
import sys

from perfstats_profiler_runner import EVENTS_FILE, RUN_SUBDIR, apply_profiling_events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="perfstats-runner-apply",
        description=(
            "Write the profiling_data that an ansible-runner worker sent back (%s/%s in the artifacts) "
            "into the processing side's job_events/*.json." % (RUN_SUBDIR, EVENTS_FILE)
        ),
    )
    parser.add_argument("artifact_dirs", nargs="+", metavar="ARTIFACT_DIR", help="a job's artifacts/<ident> directory")
    args = parser.parse_args(argv)
    status = 0
    for directory in args.artifact_dirs:
        if not os.path.isdir(os.path.join(directory, "job_events")):
            sys.stderr.write("perfstats-runner-apply: %s has no job_events directory\n" % directory)
            status = 2
            continue
        if not os.path.exists(os.path.join(directory, RUN_SUBDIR, EVENTS_FILE)):
            # Not streamed from a worker, or not profiled: nothing to do, and nothing wrong.
            print("%s: no %s/%s, nothing to apply" % (directory, RUN_SUBDIR, EVENTS_FILE))
            continue
        print("%s: profiling_data written into %d job events" % (directory, apply_profiling_events(directory)))
    return status


if __name__ == "__main__":
    sys.exit(main())
