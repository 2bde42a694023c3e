# -*- coding: utf-8 -*-
# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promises outside it.

"""Kernel cgroup readers: layout detection and per-group metric files.

Standard library only and no Ansible imports, so the same code serves the
``cgroup_info`` module on a target (Python >= 3.6) and the profiler on the
controller.  Nothing here keeps state between calls apart from the paths it
was given; every reader answers ``None`` when a file is missing, empty,
unparsable, unreadable or vanishes while being read (a removed group answers
``ENODEV``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
from typing import Dict, FrozenSet, NamedTuple, Optional, Tuple

CPU = "cpu"
MEMORY = "memory"
PIDS = "pids"
METRICS = (CPU, MEMORY, PIDS)

# The v1 controller (hierarchy) each metric is read from.
V1_CONTROLLER = {CPU: "cpuacct", MEMORY: "memory", PIDS: "pids"}

GROUP_PREFIX = "perfstats"

_USER_HZ = 100
try:
    _USER_HZ = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
    pass


class CpuTimes(NamedTuple("CpuTimes", [("user", float), ("system", float), ("total", float)])):
    """Cumulative CPU seconds of a group of processes."""

    __slots__ = ()

    def minus(self, other):
        # type: (CpuTimes) -> CpuTimes
        return CpuTimes(
            max(0.0, self.user - other.user),
            max(0.0, self.system - other.system),
            max(0.0, self.total - other.total),
        )


# --------------------------------------------------------------------------
# Raw file access
# --------------------------------------------------------------------------

# errno values that mean "this file, or its group, is not (or no longer) there".
_GONE = (errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EINVAL, errno.ENOTDIR)


def read_text(path):
    # type: (str) -> Optional[str]
    """Return the file's text, or None if it is missing, unreadable or gone."""
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def parse_int(text):
    # type: (Optional[str]) -> Optional[int]
    """Parse a single-value file; ``max`` (no limit), empty or junk is None."""
    if text is None:
        return None
    text = text.strip()
    if not text or text == "max":
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return None


def parse_flat_keyed(text):
    # type: (Optional[str]) -> Optional[Dict[str, int]]
    """Parse ``key value`` lines (cpu.stat, memory.stat, cpuacct.stat)."""
    if text is None:
        return None
    values = {}  # type: Dict[str, int]
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            values[parts[0]] = int(parts[1])
        except ValueError:
            continue
    return values or None


def parse_pid_list(text):
    # type: (Optional[str]) -> Optional[List[int]]
    if text is None:
        return None
    pids = []  # type: List[int]
    for line in text.split():
        try:
            pids.append(int(line))
        except ValueError:
            continue
    return pids


def read_int(path):
    # type: (str) -> Optional[int]
    return parse_int(read_text(path))


def read_flat_keyed(path):
    # type: (str) -> Optional[Dict[str, int]]
    return parse_flat_keyed(read_text(path))


# --------------------------------------------------------------------------
# Layout detection: from /proc/self/mountinfo and /proc/<pid>/cgroup
# --------------------------------------------------------------------------


class Mount(
    NamedTuple(
        "Mount",
        [
            ("version", int),
            ("mountpoint", str),
            ("root", str),
            ("controllers", FrozenSet[str]),
            ("read_only", bool),
        ],
    )
):
    """One mounted cgroup hierarchy (v1: named by its controllers)."""

    __slots__ = ()


def _unescape_mount_field(field):
    # type: (str) -> str
    # mountinfo escapes space, tab, newline and backslash as octal \ooo.
    out = []
    index = 0
    while index < len(field):
        char = field[index]
        if char == "\\" and index + 4 <= len(field) and field[index + 1 : index + 4].isdigit():
            out.append(chr(int(field[index + 1 : index + 4], 8)))
            index += 4
            continue
        out.append(char)
        index += 1
    return "".join(out)


def parse_mountinfo(text, v2_controllers=None):
    # type: (Optional[str], Optional[Dict[str, FrozenSet[str]]]) -> List[Mount]
    """Return the cgroup mounts of a mountinfo text, in mount order.

    ``v2_controllers`` maps a v2 mount point to the controllers its root
    offers (``cgroup.controllers``); mountinfo does not list them for v2.
    """
    mounts = []  # type: List[Mount]
    if not text:
        return mounts
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        root = _unescape_mount_field(fields[3])
        mountpoint = _unescape_mount_field(fields[4])
        mount_opts = fields[5].split(",")
        super_opts = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        read_only = "ro" in mount_opts or "ro" in super_opts
        if fstype == "cgroup2":
            controllers = (v2_controllers or {}).get(mountpoint, frozenset())
            mounts.append(Mount(2, mountpoint, root, frozenset(controllers), read_only))
        else:
            names = set()
            for opt in super_opts:
                if opt.startswith("name="):
                    names.add(opt)
                elif (
                    opt not in ("rw", "ro")
                    and "=" not in opt
                    and opt
                    not in (
                        "noprefix",
                        "clone_children",
                        "xattr",
                        "cpuset_v2_mode",
                        "favordynmods",
                        "nsdelegate",
                    )
                ):
                    names.add(opt)
            mounts.append(Mount(1, mountpoint, root, frozenset(names), read_only))
    return mounts


def parse_proc_cgroup(text):
    # type: (Optional[str]) -> List[Tuple[int, FrozenSet[str], str]]
    """Parse ``/proc/<pid>/cgroup``: (hierarchy id, controllers, path) rows."""
    rows = []  # type: List[Tuple[int, FrozenSet[str], str]]
    if not text:
        return rows
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        try:
            hid = int(parts[0])
        except ValueError:
            continue
        names = frozenset(name for name in parts[1].split(",") if name)
        rows.append((hid, names, parts[2]))
    return rows


def group_dir(mount, path):
    # type: (Mount, str) -> Optional[str]
    """Directory of a process's group ``path`` within a mounted hierarchy.

    The mount may expose only a sub-tree (``root``, as in containers without
    a cgroup namespace); a path outside it cannot be reached there.
    """
    root = mount.root.rstrip("/")
    if path == mount.root or path.rstrip("/") == root:
        rel = ""
    elif root and path.startswith(root + "/"):
        rel = path[len(root) :]
    elif not root:
        rel = path
    else:
        return None
    if "/.." in rel or rel.startswith(".."):
        return None
    return os.path.normpath(mount.mountpoint + rel)


class Hierarchy(
    NamedTuple(
        "Hierarchy",
        [
            ("version", int),
            ("controllers", FrozenSet[str]),
            ("mountpoint", str),
            ("own_path", str),
            ("own_dir", Optional[str]),
            ("read_only", bool),
        ],
    )
):
    """A hierarchy the process belongs to, with its own group's directory."""

    __slots__ = ()

    @property
    def key(self):
        # type: () -> str
        if self.version == 2:
            return "unified"
        return ",".join(sorted(self.controllers))


class Layout(NamedTuple("Layout", [("mode", str), ("hierarchies", Tuple[Hierarchy, ...])])):
    """The cgroup layout as one process sees it.

    ``mode`` is ``v2`` (only the unified hierarchy), ``v1`` (only v1
    controller hierarchies), ``hybrid`` (both) or ``none``.
    """

    __slots__ = ()

    def v1(self, controller):
        # type: (str) -> Optional[Hierarchy]
        for hierarchy in self.hierarchies:
            if hierarchy.version == 1 and controller in hierarchy.controllers:
                return hierarchy
        return None

    @property
    def v2(self):
        # type: () -> Optional[Hierarchy]
        for hierarchy in self.hierarchies:
            if hierarchy.version == 2:
                return hierarchy
        return None

    def as_dict(self):
        # type: () -> Dict[str, object]
        return {
            "mode": self.mode,
            "hierarchies": [
                {
                    "version": h.version,
                    "key": h.key,
                    "controllers": sorted(h.controllers),
                    "mountpoint": h.mountpoint,
                    "own_path": h.own_path,
                    "own_dir": h.own_dir,
                    "read_only": h.read_only,
                }
                for h in self.hierarchies
            ],
        }


def build_layout(mounts, proc_rows):
    # type: (List[Mount], List[Tuple[int, FrozenSet[str], str]]) -> Layout
    """Combine mounts and a process's cgroup rows into a Layout."""
    hierarchies = []  # type: List[Hierarchy]
    for hid, names, path in proc_rows:
        if hid == 0 and not names:
            candidates = [m for m in mounts if m.version == 2]
        else:
            candidates = [m for m in mounts if m.version == 1 and m.controllers == names]
        chosen = None
        own_dir = None
        for mount in candidates:
            own_dir = group_dir(mount, path)
            chosen = mount
            if own_dir is not None:
                break
        if chosen is None:
            continue
        hierarchies.append(Hierarchy(chosen.version, chosen.controllers, chosen.mountpoint, path, own_dir, chosen.read_only))
    has_v2 = any(h.version == 2 for h in hierarchies)
    has_v1 = any(h.version == 1 and any(not c.startswith("name=") for c in h.controllers) for h in hierarchies)
    if has_v2 and has_v1:
        mode = "hybrid"
    elif has_v2:
        mode = "v2"
    elif has_v1:
        mode = "v1"
    else:
        mode = "none"
    return Layout(mode, tuple(hierarchies))


def detect_layout(pid="self", proc="/proc"):
    # type: (str, str) -> Layout
    """Detect the layout from the mount table and the process's cgroup file."""
    return layout_from(read_text(os.path.join(proc, "self", "mountinfo")), read_text(os.path.join(proc, str(pid), "cgroup")))


def layout_from(mountinfo, proc_cgroup):
    # type: (Optional[str], Optional[str]) -> Layout
    """The layout described by a mountinfo text and a /proc/<pid>/cgroup text.

    The controllers a v2 group offers are read from the mounted tree.
    """
    bare = parse_mountinfo(mountinfo)
    v2_controllers = {}  # type: Dict[str, FrozenSet[str]]
    for mount in bare:
        if mount.version == 2:
            text = read_text(os.path.join(mount.mountpoint, "cgroup.controllers"))
            v2_controllers[mount.mountpoint] = frozenset((text or "").split())
    mounts = parse_mountinfo(mountinfo, v2_controllers)
    layout = build_layout(mounts, parse_proc_cgroup(proc_cgroup))
    # The v2 controllers that matter are those offered to the process's own
    # group, not the root's.
    v2 = layout.v2
    if v2 is not None and v2.own_dir is not None:
        own = read_text(os.path.join(v2.own_dir, "cgroup.controllers"))
        if own is not None:
            fixed = tuple(h._replace(controllers=frozenset(own.split())) if h.version == 2 else h for h in layout.hierarchies)
            layout = Layout(layout.mode, fixed)
    return layout


def kernel_release():
    # type: () -> str
    try:
        return os.uname()[2]
    except AttributeError:  # pragma: no cover - non-POSIX
        return ""


# --------------------------------------------------------------------------
# One group directory: metric files of v1 and v2 (their names don't clash)
# --------------------------------------------------------------------------


class KeptFile:
    """A kernel file kept open and re-read from its start with pread.

    Re-reading a cgroup file this way costs a fraction of opening it each
    time, which matters for files read on every sample.  Answers None (and
    lets go of the descriptor) when the file is missing or its group is gone.
    """

    __slots__ = ("path", "_fd")

    def __init__(self, path):
        # type: (str) -> None
        self.path = path
        self._fd = None  # type: Optional[int]

    def read(self):
        # type: () -> Optional[str]
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            return os.pread(self._fd, 65536, 0).decode("ascii", "replace")
        except (IOError, OSError):
            self.close()
            return None

    def close(self):
        # type: () -> None
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


class GroupDir:
    """Reader and writer for one cgroup directory of one hierarchy.

    With ``keep_open`` the files it reads stay open between reads (see
    KeptFile); ``close()`` lets them go.
    """

    __slots__ = ("path", "version", "_kept")

    def __init__(self, path, version, keep_open=False):
        # type: (str, int, bool) -> None
        self.path = path
        self.version = version
        self._kept = {} if keep_open else None  # type: Optional[Dict[str, KeptFile]]

    def read(self, name):
        # type: (str) -> Optional[str]
        """The text of one of the group's files (None: missing, unreadable or gone)."""
        if self._kept is None:
            return read_text(self.file(name))
        kept = self._kept.get(name)
        if kept is None:
            kept = self._kept[name] = KeptFile(self.file(name))
        return kept.read()

    def close(self):
        # type: () -> None
        for kept in (self._kept or {}).values():
            kept.close()
        if self._kept:
            self._kept = {}

    def __repr__(self):
        # type: () -> str
        return "GroupDir(%r, v%d)" % (self.path, self.version)

    def file(self, name):
        # type: (str) -> str
        return os.path.join(self.path, name)

    def has(self, name):
        # type: (str) -> bool
        return os.path.exists(self.file(name))

    # ---- CPU ----
    def cpu(self):
        # type: () -> Optional[CpuTimes]
        if self.version == 2:
            return self._cpu_v2()
        return self._cpu_v1()

    def _cpu_v2(self):
        # type: () -> Optional[CpuTimes]
        stat = parse_flat_keyed(self.read("cpu.stat"))
        if not stat or "usage_usec" not in stat:
            return None
        return CpuTimes(
            stat.get("user_usec", 0) / 1e6,
            stat.get("system_usec", 0) / 1e6,
            stat["usage_usec"] / 1e6,
        )

    def _cpu_v1(self):
        # type: () -> Optional[CpuTimes]
        total = parse_int(self.read("cpuacct.usage"))
        if total is None:
            return None
        user_ns = parse_int(self.read("cpuacct.usage_user"))
        sys_ns = parse_int(self.read("cpuacct.usage_sys"))
        if user_ns is not None and sys_ns is not None:
            return CpuTimes(user_ns / 1e9, sys_ns / 1e9, total / 1e9)
        # Older kernels: only cpuacct.stat, in USER_HZ ticks.
        stat = parse_flat_keyed(self.read("cpuacct.stat")) or {}
        return CpuTimes(stat.get("user", 0) / _USER_HZ, stat.get("system", 0) / _USER_HZ, total / 1e9)

    # ---- memory ----
    def memory_current(self):
        # type: () -> Optional[int]
        return parse_int(self.read("memory.current" if self.version == 2 else "memory.usage_in_bytes"))

    def memory_peak(self):
        # type: () -> Optional[int]
        return parse_int(self.read("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"))

    def memory_stat(self):
        # type: () -> Optional[Dict[str, int]]
        return parse_flat_keyed(self.read("memory.stat"))

    def reset_memory_peak(self):
        # type: () -> bool
        """v1: writing to max_usage_in_bytes resets it to the current usage.

        (v2 resets per open file descriptor, which a reader of paths cannot
        keep; the profiler scopes v2 peaks with fresh groups instead.)
        """
        if self.version != 1:
            return False
        return self.write("memory.max_usage_in_bytes", "0")

    # ---- PIDs ----
    def pids_current(self):
        # type: () -> Optional[int]
        return parse_int(self.read("pids.current"))

    def pids_peak(self):
        # type: () -> Optional[int]
        return parse_int(self.read("pids.peak"))

    # ---- membership and controllers ----
    def procs(self):
        # type: () -> Optional[List[int]]
        return parse_pid_list(read_text(self.file("cgroup.procs")))

    def controllers(self):
        # type: () -> Optional[FrozenSet[str]]
        text = read_text(self.file("cgroup.controllers"))
        return None if text is None else frozenset(text.split())

    def subtree_control(self):
        # type: () -> Optional[FrozenSet[str]]
        text = read_text(self.file("cgroup.subtree_control"))
        return None if text is None else frozenset(text.split())

    # ---- writes (each answers whether it worked; errors are not raised) ----
    def write(self, name, value):
        # type: (str, str) -> bool
        try:
            with open(self.file(name), "w") as handle:
                handle.write(value)
            return True
        except (IOError, OSError):
            return False

    def write_error(self, name, value):
        # type: (str, str) -> Optional[int]
        """Like write(), but answers the errno of a failure (None: it worked)."""
        try:
            with open(self.file(name), "w") as handle:
                handle.write(value)
            return None
        except (IOError, OSError) as exc:
            return exc.errno or errno.EIO

    def enable_controllers(self, names):
        # type: (List[str]) -> bool
        if not names:
            return True
        return self.write("cgroup.subtree_control", " ".join("+" + n for n in names))

    def add_process(self, pid):
        # type: (int) -> Optional[int]
        """Move a process (all its threads) here; answers errno or None."""
        return self.write_error("cgroup.procs", str(pid))

    def add_calling_thread(self, pid):
        # type: (int) -> Optional[int]
        """Move the calling thread here (v1), or process ``pid`` (v2); errno or None.

        A process moved through ``cgroup.procs`` makes the kernel take its
        global threadgroup lock, which waits for an RCU grace period: several
        milliseconds of blocked caller, whatever the CPU cost.  A v1 thread
        moving itself (``0`` into ``tasks``) does not need that lock on
        recent kernels.  What the thread forks is born in its group.  v2
        domain groups take only whole processes.
        """
        if self.version == 1:
            return self.write_error("tasks", "0")
        return self.add_process(pid)

    def child(self, name):
        # type: (str) -> GroupDir
        return GroupDir(os.path.join(self.path, name), self.version)

    def make_child(self, name):
        # type: (str) -> Tuple[Optional[GroupDir], Optional[int]]
        """Create a child group; answers (group, None) or (None, errno)."""
        child = self.child(name)
        try:
            os.mkdir(child.path)
        except OSError as exc:
            return None, exc.errno or errno.EIO
        return child, None

    def remove(self):
        # type: () -> Optional[int]
        """rmdir this group; answers errno or None (ENOENT counts as done)."""
        try:
            os.rmdir(self.path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            return exc.errno or errno.EIO
        return None

    def exists(self):
        # type: () -> bool
        return os.path.isdir(self.path)


def process_rss_bytes(pid, proc="/proc"):
    # type: (int, str) -> Optional[int]
    """Resident set size of one process from /proc/<pid>/statm."""
    text = read_text(os.path.join(proc, str(pid), "statm"))
    if not text:
        return None
    parts = text.split()
    if len(parts) < 2:
        return None
    try:
        return int(parts[1]) * _PAGE_SIZE
    except ValueError:
        return None


_PAGE_SIZE = 4096
try:
    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
    pass


def can_create_child(parent, controllers=None):
    # type: (GroupDir, Optional[List[str]]) -> Tuple[bool, Optional[int]]
    """Probe whether a child group can be made (and removed) beneath parent.

    On v2, ``controllers`` must also be offered to the child (listed in the
    parent's ``cgroup.subtree_control``).  Answers (ok, errno).
    """
    name = "%s-probe-%d" % (GROUP_PREFIX, os.getpid())
    child, err = parent.make_child(name)
    if child is None:
        return False, err
    try:
        if controllers and parent.version == 2:
            offered = child.controllers() or frozenset()
            if not set(controllers) <= set(offered):
                return False, errno.EOPNOTSUPP
        return True, None
    finally:
        child.remove()


# --------------------------------------------------------------------------
# Which hierarchy serves which metric: one decision shared by the profiler
# and the cgroup_info module.
# --------------------------------------------------------------------------

BACKENDS = ("auto", "cgroup2", "cgroup1", "process")


class Source(
    NamedTuple(
        "Source",
        [
            ("metric", str),
            ("hierarchy", Optional[Hierarchy]),
            ("parent", Optional[str]),
            ("kernel_peak", bool),
        ],
    )
):
    """Where one metric comes from.

    ``hierarchy`` None means the metric is sampled from the group's member
    processes (or the process tree).  ``parent`` is the directory beneath
    which the run's group is made.  ``kernel_peak`` tells whether the
    kernel keeps a peak counter for it there.
    """

    __slots__ = ()


class Plan(
    NamedTuple(
        "Plan",
        [
            ("backend", str),
            ("sources", Dict[str, Source]),
            ("notes", Tuple[str, ...]),
        ],
    )
):
    """The backend chosen for a layout, and why."""

    __slots__ = ()

    @property
    def hierarchies(self):
        # type: () -> List[Hierarchy]
        seen = []  # type: List[Hierarchy]
        for metric in METRICS:
            source = self.sources.get(metric)
            if source is not None and source.hierarchy is not None and source.hierarchy not in seen:
                seen.append(source.hierarchy)
        return seen

    def parent_of(self, hierarchy):
        # type: (Hierarchy) -> Optional[str]
        for source in self.sources.values():
            if source.hierarchy == hierarchy:
                return source.parent
        return None

    def as_dict(self):
        # type: () -> Dict[str, object]
        return {
            "backend": self.backend,
            "metrics": {
                metric: {
                    "hierarchy": None if s.hierarchy is None else s.hierarchy.key,
                    "version": None if s.hierarchy is None else s.hierarchy.version,
                    "parent": s.parent,
                    "exact_peak": s.kernel_peak,
                }
                for metric, s in sorted(self.sources.items())
            },
            "notes": list(self.notes),
        }


def _parent_dir(hierarchy, base):
    # type: (Hierarchy, Optional[str]) -> Optional[str]
    """Where run groups go: the own group, or a base group.

    An absolute ``base`` is a path from each hierarchy's root; a relative one
    is taken beneath the process's own group in each hierarchy (which may
    differ between hierarchies).
    """
    if not base:
        return hierarchy.own_dir
    if base.startswith("/"):
        return os.path.normpath(hierarchy.mountpoint + "/" + base.strip("/"))
    if hierarchy.own_dir is None:
        return None
    return os.path.normpath(os.path.join(hierarchy.own_dir, base))


def _writable_dir(path):
    # type: (Optional[str]) -> bool
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _v2_offered(parent):
    # type: (str) -> FrozenSet[str]
    """Controllers a new child of ``parent`` gets, or could be given."""
    group = GroupDir(parent, 2)
    offered = set(group.subtree_control() or ())
    if group.procs() == []:
        # An empty group may enable what it has for its children.
        offered |= set(group.controllers() or ())
    return frozenset(offered)


def _kernel_has_peak(hierarchy, parent, metric):
    # type: (Hierarchy, str, str) -> bool
    """Whether groups made here keep a peak counter for ``metric``.

    Judged from the parent's files, or (root groups lack most files) from
    the kernel release that introduced the counter.
    """
    if metric == CPU:
        return True
    if hierarchy.version == 1 and metric == MEMORY:
        return True  # memory.max_usage_in_bytes is as old as v1 memcg
    name = "memory.peak" if metric == MEMORY else "pids.peak"
    if os.path.exists(os.path.join(parent, name)):
        return True
    return _kernel_at_least((5, 19) if metric == MEMORY else (6, 1))


def _kernel_at_least(version):
    # type: (Tuple[int, int]) -> bool
    release = kernel_release().split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= version
    except (IndexError, ValueError):
        return False


def plan_backend(layout, backend="auto", base=None):
    # type: (Layout, str, Optional[str]) -> Plan
    """Choose, per metric, the hierarchy it is read from.

    ``backend`` is ``auto`` (best available per metric), ``cgroup2``,
    ``cgroup1`` or ``process``; ``base`` a group path (as seen inside each
    hierarchy) prepared by an administrator, else the process's own group.
    """
    notes = []  # type: List[str]
    process_plan = Plan("process", {m: Source(m, None, None, False) for m in METRICS}, ())
    if backend == "process":
        return process_plan._replace(notes=("process-tree backend requested",))
    if layout.mode == "none":
        return process_plan._replace(notes=("no cgroup hierarchy is mounted for this process",))

    usable = []  # type: List[Tuple[Hierarchy, str]]
    for hierarchy in layout.hierarchies:
        if hierarchy.version == 1 and not (hierarchy.controllers & set(V1_CONTROLLER.values())):
            continue
        if backend == "cgroup1" and hierarchy.version != 1:
            continue
        if backend == "cgroup2" and hierarchy.version != 2:
            continue
        parent = _parent_dir(hierarchy, base)
        if hierarchy.read_only:
            notes.append("%s: mounted read-only" % hierarchy.key)
            continue
        if parent is None:
            notes.append("%s: own group not visible at %s" % (hierarchy.key, hierarchy.mountpoint))
            continue
        if not _writable_dir(parent):
            notes.append("%s: cannot create groups in %s" % (hierarchy.key, parent))
            continue
        usable.append((hierarchy, parent))

    sources = {}  # type: Dict[str, Source]
    for metric in METRICS:
        chosen = None  # type: Optional[Source]
        for hierarchy, parent in usable:
            if hierarchy.version == 2:
                if metric != CPU and metric not in _v2_offered(parent):
                    continue
            elif V1_CONTROLLER[metric] not in hierarchy.controllers:
                continue
            candidate = Source(metric, hierarchy, parent, _kernel_has_peak(hierarchy, parent, metric))
            # Prefer v2 where it offers the metric (auto), else the v1 controller.
            if chosen is None or (hierarchy.version == 2 and chosen.hierarchy is not None and chosen.hierarchy.version == 1):
                chosen = candidate
        if chosen is None:
            notes.append("%s: no hierarchy offers it here; sampled from the run's processes" % metric)
            chosen = Source(metric, None, None, False)
        sources[metric] = chosen

    if sources[CPU].hierarchy is None:
        notes.append("no usable cgroup for CPU accounting")
        return process_plan._replace(notes=tuple(notes))
    # Sampled metrics need the member list of a group that holds the run.
    versions = set(s.hierarchy.version for s in sources.values() if s.hierarchy is not None)
    if versions == {2}:
        name = "cgroup2"
    elif versions == {1}:
        name = "cgroup1"
    else:
        name = "hybrid"
    return Plan(name, sources, tuple(notes))


def own_rss_bytes():
    # type: () -> Optional[int]
    return process_rss_bytes(os.getpid())


# --------------------------------------------------------------------------
# Host facts for the cgroup_info module and the controller role: where a
# base group resolves, who may use it, and which peak counters the kernel
# keeps.  Read-only apart from probe_child(), which makes and removes one
# empty group.
# --------------------------------------------------------------------------

RUN_GROUP_MARK = GROUP_PREFIX + "-run-"

# Hierarchies a base group is prepared in: the unified one (v2) and the v1
# hierarchies of the controllers the profiler reads.
BASE_V1_CONTROLLERS = ("cpuacct", "memory", "pids")

# Controllers a v2 base group enables for its children (cpu.stat needs none).
BASE_V2_CONTROLLERS = ("memory", "pids")

# Files of a v2 group that a delegated user needs write access to
# (Documentation/admin-guide/cgroup-v2.rst, "Delegation").
V2_DELEGATED_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
V1_DELEGATED_FILES = ("cgroup.procs", "tasks")


def _strip_suffix(path, suffix):
    # type: (str, str) -> str
    if not suffix or not path.endswith(suffix):
        return path
    return path[: len(path) - len(suffix)] or "/"


def home_path(own_path, base=None):
    # type: (str, Optional[str]) -> str
    """The group a profiled controller was in before its run moved it.

    A process started by a profiled run (a module, for example) lives in the
    run's window group: ``<home>[/<base>]/perfstats-run-*/perfstats-w*``.
    Dropping the run's groups, and a relative ``base`` directly above them,
    gives the group the controller's relative base was resolved against.
    Any other path is answered unchanged.
    """
    parts = own_path.split("/")
    marks = [i for i, part in enumerate(parts) if part.startswith(RUN_GROUP_MARK)]
    if not marks:
        return own_path
    home = "/".join(parts[: marks[0]]) or "/"
    if base and not base.startswith("/"):
        home = _strip_suffix(home, "/" + base.strip("/"))
    return home


def home_layout(layout, base=None):
    # type: (Layout, Optional[str]) -> Layout
    """The layout with each own group replaced by home_path()."""
    fixed = []  # type: List[Hierarchy]
    for hierarchy in layout.hierarchies:
        home = home_path(hierarchy.own_path, base)
        if home == hierarchy.own_path:
            fixed.append(hierarchy)
            continue
        suffix = hierarchy.own_path[len(home.rstrip("/")) :]
        own_dir = hierarchy.own_dir
        if own_dir is not None:
            own_dir = _strip_suffix(own_dir, suffix)
        fixed.append(hierarchy._replace(own_path=home, own_dir=own_dir))
    return Layout(layout.mode, tuple(fixed))


def base_hierarchies(layout):
    # type: (Layout) -> List[Hierarchy]
    """The hierarchies a base group is prepared in (unified and v1 cpuacct, memory, pids)."""
    chosen = []  # type: List[Hierarchy]
    for hierarchy in layout.hierarchies:
        if hierarchy.version == 2 or hierarchy.controllers & set(BASE_V1_CONTROLLERS):
            chosen.append(hierarchy)
    return chosen


def base_dir(hierarchy, base):
    # type: (Hierarchy, Optional[str]) -> Optional[str]
    """Directory a base group has in one hierarchy (same rule as the profiler)."""
    return _parent_dir(hierarchy, base)


def mode_allows(st_mode, st_uid, st_gid, uid, gids, want):
    # type: (int, int, int, int, FrozenSet[int], int) -> bool
    """Whether ``uid`` (member of ``gids``) gets ``want`` (os.R_OK/W_OK/X_OK bits) from these bits."""
    if uid == 0:
        return True
    if st_uid == uid:
        shift = 6
    elif st_gid in gids:
        shift = 3
    else:
        shift = 0
    granted = (st_mode >> shift) & 0o7
    return granted & want == want


def user_may(path, uid, gids, want):
    # type: (str, int, FrozenSet[int], int) -> bool
    """Whether a user may access ``path`` (judged from its owner and mode bits)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return mode_allows(info.st_mode, info.st_uid, info.st_gid, uid, gids, want)


def common_ancestor(first, second):
    # type: (str, str) -> str
    """Deepest directory both paths are inside (or equal to)."""
    left = [p for p in first.split("/") if p]
    right = [p for p in second.split("/") if p]
    shared = []  # type: List[str]
    for a, b in zip(left, right):
        if a != b:
            break
        shared.append(a)
    return "/" + "/".join(shared)


def probe_child(parent_dir, version, controllers=None):
    # type: (str, int, Optional[List[str]]) -> Tuple[bool, Optional[int]]
    """Really create (and remove) a ``perfstats-probe-*`` child as the calling user."""
    return can_create_child(GroupDir(parent_dir, version), controllers)


def kernel_features(layout):
    # type: (Layout) -> Dict[str, bool]
    """Peak counters the kernel keeps for new groups here.

    ``memory_peak``/``pids_peak``: a peak file in the hierarchy that serves
    the metric (v2 ``memory.peak`` and ``pids.peak``, v1
    ``memory.max_usage_in_bytes`` and ``pids.peak``).
    ``memory_peak_reset``: v2 ``memory.peak`` can be reset per open file
    descriptor (Linux 6.12).
    """
    features = {"memory_peak": False, "memory_peak_reset": False, "pids_peak": False, "memory_peak_v2": False}
    v2 = layout.v2
    for metric, key in ((MEMORY, "memory_peak"), (PIDS, "pids_peak")):
        checks = []  # type: List[Hierarchy]
        if v2 is not None and metric in v2.controllers:
            checks.append(v2)
        v1 = layout.v1(V1_CONTROLLER[metric])
        if v1 is not None:
            checks.append(v1)
        for hierarchy in checks:
            where = hierarchy.own_dir or hierarchy.mountpoint
            if _kernel_has_peak(hierarchy, where, metric):
                features[key] = True
                if hierarchy.version == 2 and metric == MEMORY:
                    features["memory_peak_v2"] = True
    features["memory_peak_reset"] = features["memory_peak_v2"] and _kernel_at_least((6, 12))
    return features


def choose_plan(layout, backend="auto", base=None):
    # type: (Layout, str, Optional[str]) -> Tuple[Plan, bool]
    """The plan a run would start with, and whether ``base`` was usable.

    A base group that gives no cgroup (while one was asked for) is dropped
    and the own group is planned instead, as a profiled run does.
    """
    if base:
        plan = plan_backend(layout, backend, base)
        if plan.backend != "process" or backend == "process":
            return plan, True
        return plan_backend(layout, backend, None), False
    return plan_backend(layout, backend, None), True
