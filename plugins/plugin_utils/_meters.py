# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""Meters: the same small questions answered for a group of processes.

A meter answers cumulative CPU seconds, current and peak memory, current and
peak PIDs, and says which peaks the kernel keeps.  ``CgroupMeter`` reads a
group that may span hierarchies (hybrid hosts); ``ProcessTreeMeter`` walks a
process tree with psutil where no group can be used.  No Ansible imports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from ansible_collections.perfstats.profiler.plugins.module_utils._cgroups import (
    CPU,
    MEMORY,
    PIDS,
    CpuTimes,
    GroupDir,
    process_rss_bytes,
)

try:
    import psutil
except ImportError:  # the process-tree backend is then unavailable
    psutil = None


def walk_procs(group: GroupDir) -> Iterator[int]:
    """PIDs of a group and of every group beneath it."""
    for top, _dirs, _files in os.walk(group.path):
        yield from GroupDir(top, group.version).procs() or ()


class CgroupMeter:
    """Metrics of one logical group, each read from its own hierarchy.

    ``groups`` maps a metric to the group directory it is read from; a
    metric without one is sampled from the processes of ``members`` (the
    group, and those beneath it, that holds the run's processes).
    """

    def __init__(self, groups: Mapping[str, GroupDir | None], members: GroupDir | None = None) -> None:
        self._cpu = groups.get(CPU)
        self._memory = groups.get(MEMORY)
        self._pids = groups.get(PIDS)
        self._members = members
        self.memory_exact = self._memory is not None and self._memory.memory_peak() is not None
        self.pids_exact = self._pids is not None and self._pids.pids_peak() is not None

    def cpu(self) -> CpuTimes | None:
        return None if self._cpu is None else self._cpu.cpu()

    def _member_pids(self) -> list[int] | None:
        return None if self._members is None else list(walk_procs(self._members))

    def memory(self, members: list[int] | None = None) -> int | None:
        if self._memory is not None:
            return self._memory.memory_current()
        if members is None:
            members = self._member_pids()
        if members is None:
            return None
        sizes = [process_rss_bytes(pid) for pid in members]
        return sum(size for size in sizes if size is not None)

    def memory_peak(self) -> int | None:
        return self._memory.memory_peak() if self.memory_exact and self._memory is not None else None

    def pids(self, members: list[int] | None = None) -> int | None:
        if self._pids is not None:
            return self._pids.pids_current()
        if members is None:
            members = self._member_pids()
        return None if members is None else len(members)

    def pids_peak(self) -> int | None:
        return self._pids.pids_peak() if self.pids_exact and self._pids is not None else None

    def read(self) -> tuple[CpuTimes | None, int | None, int | None]:
        """CPU, memory and PIDs now, for one sample (the members listed once for both)."""
        members = self._member_pids() if self._memory is None or self._pids is None else None
        return self.cpu(), self.memory(members), self.pids(members)


class ProcessTreeMeter:
    """Metrics of a process and its descendants, sampled through psutil.

    CPU: the root's own and reaped children's times plus every live
    descendant's (whose children, once reaped, roll into its parent's).
    Memory: the summed resident set size (RSS) of the tree; pages shared
    between processes count once per process.  PIDs: processes in the tree.
    The kernel keeps no peak for a tree: peaks are the maxima of samples.
    """

    memory_exact = False
    pids_exact = False

    def __init__(self, pid: int | None = None) -> None:
        if psutil is None:
            raise RuntimeError("psutil is not installed")
        self._root = psutil.Process(pid or os.getpid())

    def _tree(self) -> list:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return [self._root]

    def read(self) -> tuple[CpuTimes | None, int | None, int | None]:
        """CPU, memory and PIDs of the tree from one walk of it."""
        user = system = 0.0
        rss = 0
        count = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    size = proc.memory_info().rss
            except psutil.Error:
                continue
            user += times.user + getattr(times, "children_user", 0.0)
            system += times.system + getattr(times, "children_system", 0.0)
            rss += size
            count += 1
        return CpuTimes(user, system, user + system), rss, count

    def cpu(self) -> CpuTimes | None:
        return self.read()[0]

    def memory(self) -> int | None:
        return self.read()[1]

    def memory_peak(self) -> int | None:
        return None

    def pids(self) -> int | None:
        return len(self._tree())

    def pids_peak(self) -> int | None:
        return None
