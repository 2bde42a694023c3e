"""Recorded cgroup file trees (formats per the kernel's cgroup-v1 and cgroup-v2 docs).

Each layout is the mount table, a process's /proc/<pid>/cgroup and the files of
the groups that matter, as read on real hosts of that kind.  ``materialize``
writes one beneath a temporary directory, rewriting mount points into it.
"""

from __future__ import annotations

from pathlib import Path

V2_ROOT_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
    "cgroup.subtree_control": "cpuset cpu io memory pids\n",
}

# A RHEL 9 / Fedora / Ubuntu 22.04 host: pure v2, a user session scope.
V2 = {
    "mountinfo": "35 24 0:30 / {root}/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
    "proc_cgroup": "0::/user.slice/user-1000.slice/session-3.scope\n",
    "files": {
        "sys/fs/cgroup": V2_ROOT_FILES,
        "sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope": {
            "cgroup.controllers": "memory pids\n",
            "cgroup.subtree_control": "",
            "cgroup.procs": "1234\n1250\n",
            "cpu.stat": (
                "usage_usec 8123456\nuser_usec 6000000\nsystem_usec 2123456\n"
                "core_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
                "nr_bursts 0\nburst_usec 0\n"
            ),
            "memory.current": "73400320\n",
            "memory.peak": "104857600\n",
            "memory.max": "max\n",
            "memory.stat": "anon 52428800\nfile 20971520\nkernel 1048576\nsock 0\nshmem 0\n",
            "pids.current": "7\n",
            "pids.peak": "19\n",
            "pids.max": "max\n",
        },
    },
}

# A RHEL 7 host: v1 with cpu and cpuacct co-mounted, no pids.peak, no
# cpuacct.usage_user (3.10 kernel): only cpuacct.stat in USER_HZ ticks.
V1 = {
    "mountinfo": (
        "25 18 0:21 / {root}/sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd\n"
        "28 18 0:24 / {root}/sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpuacct,cpu\n"
        "29 18 0:25 / {root}/sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,memory\n"
        "30 18 0:26 / {root}/sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,pids\n"
    ),
    "proc_cgroup": (
        "11:pids:/user.slice\n"
        "10:memory:/user.slice\n"
        "4:cpuacct,cpu:/user.slice\n"
        "1:name=systemd:/user.slice/user-1000.slice/session-1.scope\n"
    ),
    "files": {
        "sys/fs/cgroup/cpu,cpuacct/user.slice": {
            "cgroup.procs": "1234\n",
            "cpuacct.usage": "5250000000\n",
            "cpuacct.stat": "user 400\nsystem 125\n",
        },
        "sys/fs/cgroup/memory/user.slice": {
            "cgroup.procs": "1234\n",
            "memory.usage_in_bytes": "209715200\n",
            "memory.max_usage_in_bytes": "314572800\n",
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.use_hierarchy": "1\n",
            "memory.stat": "cache 10485760\nrss 199229440\ntotal_rss 199229440\n",
        },
        "sys/fs/cgroup/pids/user.slice": {
            "cgroup.procs": "1234\n",
            "pids.current": "12\n",
            "pids.max": "max\n",
        },
        "sys/fs/cgroup/systemd/user.slice/user-1000.slice/session-1.scope": {"cgroup.procs": "1234\n"},
    },
}

# An Ubuntu 20.04-style hybrid host: v1 controllers, v2 at unified with no controllers.
HYBRID = {
    "mountinfo": (
        "26 25 0:23 / {root}/sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate\n"
        "27 25 0:24 / {root}/sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,name=systemd\n"
        "31 25 0:28 / {root}/sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct\n"
        "32 25 0:29 / {root}/sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory\n"
        "33 25 0:30 / {root}/sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids\n"
    ),
    "proc_cgroup": (
        "12:pids:/user.slice/user-1000.slice/session-2.scope\n"
        "6:memory:/user.slice/user-1000.slice/session-2.scope\n"
        "3:cpu,cpuacct:/user.slice\n"
        "1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n"
        "0::/user.slice/user-1000.slice/session-2.scope\n"
    ),
    "files": {
        "sys/fs/cgroup/unified": {"cgroup.controllers": "", "cgroup.subtree_control": ""},
        "sys/fs/cgroup/unified/user.slice/user-1000.slice/session-2.scope": {
            "cgroup.controllers": "",
            "cgroup.procs": "2001\n",
            "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
        },
        "sys/fs/cgroup/cpu,cpuacct/user.slice": {
            "cpuacct.usage": "1600000000\n",
            "cpuacct.usage_user": "1100000000\n",
            "cpuacct.usage_sys": "500000000\n",
            "cpuacct.stat": "user 110\nsystem 50\n",
        },
        "sys/fs/cgroup/memory/user.slice/user-1000.slice/session-2.scope": {
            "memory.usage_in_bytes": "52428800\n",
            "memory.max_usage_in_bytes": "62914560\n",
        },
        "sys/fs/cgroup/pids/user.slice/user-1000.slice/session-2.scope": {
            "pids.current": "4\n",
            "pids.peak": "9\n",
        },
    },
}

# A container without a cgroup namespace: v2 mounted read-only, exposing only
# the container's own sub-tree (mount root /system.slice/docker-abc.scope).
CONTAINER_RO = {
    "mountinfo": "612 600 0:30 /system.slice/docker-abc.scope {root}/sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n",
    "proc_cgroup": "0::/system.slice/docker-abc.scope\n",
    "files": {
        "sys/fs/cgroup": {
            "cgroup.controllers": "cpu io memory pids\n",
            "cgroup.procs": "1\n7\n",
            "cpu.stat": "usage_usec 42\nuser_usec 40\nsystem_usec 2\n",
            "memory.current": "1048576\n",
        },
    },
}


def materialize(layout: dict, root: Path) -> tuple[str, str]:
    """Write a layout's files beneath root; answers (mountinfo, proc_cgroup) texts."""
    for directory, files in layout["files"].items():
        path = root / directory
        path.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (path / name).write_text(text)
    return layout["mountinfo"].format(root=root), layout["proc_cgroup"]
