#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) perfstats.profiler contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cgroup_info
short_description: Reports what a host's cgroups offer to the profile_resources callback
version_added: 0.1.0
description:
  - Reads the host's cgroup layout (v2, v1, hybrid or none), the mounted hierarchies and their controllers,
    and the group the calling process belongs to in each hierarchy.
  - Tells which peak counters the kernel keeps (C(memory.peak) and its reset per open file, C(pids.peak)),
    whether C(psutil) can be imported, and which backend the
    P(perfstats.profiler.profile_resources#callback) callback would choose on this host.
  - Resolves a base group (O(base_group)) in every hierarchy the profiler uses and tells whether a user
    (O(user)) may create groups with each controller beneath it.
  - Changes nothing. The only write it ever makes is the optional probe (O(probe)), which creates one empty
    group named C(perfstats-probe-<pid>) beneath the base and removes it at once; it is never made in check mode.
author:
  - perfstats.profiler contributors (@perfstats)
requirements:
  - Linux. On other systems the module reports cgroup mode V(none).
attributes:
  check_mode:
    description: Fully supported; nothing is changed and no probe group is made.
    support: full
  diff_mode:
    description: Nothing to show; the module changes nothing.
    support: none
options:
  base_group:
    description:
      - A base group as the callback's C(base_group) option takes it.
      - An absolute path (for example C(/perfstats-base)) is taken from the root of each hierarchy; a relative one
        (for example C(perfstats-base)) beneath the calling process's own group in each hierarchy.
      - When the calling process was started by a profiled run, its own group is the run's window group; the
        module resolves a relative base against the group the run's controller came from instead, as the
        callback did.
      - Without it the own group is reported as the place run groups would be created.
    type: str
  user:
    description:
      - The user (name or numeric uid) whose right to create groups beneath the base is reported.
      - Defaults to the user running the module.
      - For another user the answer is judged from the owner and mode bits of the base's directory and files.
        Run the module as that user (for example with C(become_user)) to have it probed for real.
    type: str
  backend:
    description: The callback's C(backend) option, to report the plan it would make with it.
    type: str
    choices: [auto, cgroup2, cgroup1, process]
    default: auto
  probe:
    description:
      - When the module runs as O(user) and not in check mode, create and remove one empty child group in each
        hierarchy to confirm the answer.
      - When false, or for another user, the answer comes from permissions alone.
    type: bool
    default: true
notes:
  - The plan (RV(plan)) is the one a run started by the user running the module would make, because the callback
    checks its own permissions. Run the module as the user who runs Ansible to see their plan.
seealso:
  - name: cgroup v2 delegation
    description: The kernel's rules for delegating a group to a user.
    link: https://docs.kernel.org/admin-guide/cgroup-v2.html#delegation
"""

EXAMPLES = r"""
- name: What does this controller offer?
  perfstats.profiler.cgroup_info:
  register: cgroups

- name: Show the backend the profiler would use
  ansible.builtin.debug:
    msg: "{{ cgroups.cgroup_mode }}: {{ cgroups.backend }} ({{ cgroups.plan.notes | join('; ') }})"

- name: May the user ansible create run groups beneath the prepared base?
  perfstats.profiler.cgroup_info:
    base_group: /perfstats-base
    user: ansible
  register: base

- name: Stop when memory groups cannot be made
  ansible.builtin.assert:
    that: base.delegation.controllers.memory.ok
    fail_msg: "{{ base.delegation.controllers.memory.reason }}"
"""

RETURN = r"""
cgroup_mode:
  description: V(v2) (unified only), V(v1) (v1 controller hierarchies only), V(hybrid) (both) or V(none).
  returned: always
  type: str
  sample: hybrid
mounts:
  description: Every mounted cgroup hierarchy, in mount order.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: 1 or 2.
      type: int
    mountpoint:
      description: Where the hierarchy is mounted.
      type: str
    root:
      description: The part of the hierarchy the mount shows (C(/) unless a namespace or bind mount narrows it).
      type: str
    controllers:
      description: v1 controllers (and C(name=) options) of the hierarchy; for v2 those of its root.
      type: list
      elements: str
    read_only:
      description: Whether the mount is read-only.
      type: bool
  sample:
    - {version: 1, mountpoint: /sys/fs/cgroup/memory, root: /, controllers: [memory], read_only: false}
hierarchies:
  description: The hierarchies the calling process belongs to, with its own group in each.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: C(unified) for v2, else the controllers joined by commas.
      type: str
    version:
      description: 1 or 2.
      type: int
    controllers:
      description: Controllers of the hierarchy (v2 - those the own group has).
      type: list
      elements: str
    mountpoint:
      description: Mount point.
      type: str
    own_path:
      description: The process's group, as in C(/proc/self/cgroup).
      type: str
    own_dir:
      description: Directory of that group, or null when the mount does not show it.
      type: str
    home_path:
      description: The group a relative base is resolved against (the own group outside profiled runs).
      type: str
    home_dir:
      description: Directory of RV(hierarchies[].home_path).
      type: str
    read_only:
      description: Whether the mount is read-only.
      type: bool
own_groups:
  description: The calling process's group per hierarchy key.
  returned: always
  type: dict
  sample: {unified: /, memory: /user.slice, pids: /user.slice/user-1000.slice/session-2.scope}
kernel:
  description: Kernel release and the peak counters it keeps for new groups.
  returned: always
  type: dict
  contains:
    release:
      description: Kernel release.
      type: str
    memory_peak:
      description: A memory peak counter exists (v2 C(memory.peak) or v1 C(memory.max_usage_in_bytes)).
      type: bool
    memory_peak_v2:
      description: The v2 C(memory.peak) file serves memory.
      type: bool
    memory_peak_reset:
      description: v2 C(memory.peak) can be reset per open file descriptor (Linux 6.12 and later).
      type: bool
    pids_peak:
      description: A C(pids.peak) file exists in the hierarchy serving PIDs.
      type: bool
psutil:
  description: Whether C(psutil) (the process-tree fallback) can be imported by the module's Python.
  returned: always
  type: dict
  contains:
    available:
      description: Importable.
      type: bool
    version:
      description: Its version, or null.
      type: str
base:
  description: The base group (or the own group when O(base_group) is not given) in every hierarchy the profiler uses.
  returned: always
  type: dict
  contains:
    group:
      description: O(base_group) as given, or null.
      type: str
    hierarchies:
      description: One entry per hierarchy (unified, and v1 cpuacct, memory and pids).
      type: list
      elements: dict
      contains:
        key:
          description: Hierarchy key.
          type: str
        version:
          description: 1 or 2.
          type: int
        dir:
          description: The base's directory, or null when it cannot be resolved there.
          type: str
        anchor:
          description: The directory the base is resolved from (the hierarchy's root or the home group).
          type: str
        chain:
          description: Directories from beneath the anchor down to RV(base.hierarchies[].dir), the ones a preparation creates.
          type: list
          elements: str
        exists:
          description: Whether RV(base.hierarchies[].dir) exists.
          type: bool
        controllers:
          description: v2 - controllers the base has (C(cgroup.controllers)); v1 - the hierarchy's controllers.
          type: list
          elements: str
        subtree_control:
          description: v2 - controllers enabled for the base's children.
          type: list
          elements: str
        processes:
          description: Number of processes directly in the base (v2 allows none where controllers are enabled).
          type: int
        owner:
          description: Numeric uid owning the base's directory.
          type: int
delegation:
  description: Whether O(user) may create groups beneath the base, per hierarchy and per controller.
  returned: always
  type: dict
  contains:
    user:
      description: User name.
      type: str
    uid:
      description: User id.
      type: int
    method:
      description: V(probe) when child groups were really made and removed, else V(permissions).
      type: str
    hierarchies:
      description: Per hierarchy - C(key), C(dir), C(create) (bool), C(probed) (bool), C(offered) (controllers a child gets),
        C(enter_from_home) (v2 - whether the user may move a process from the home group into the base) and C(reason).
      type: list
      elements: dict
    controllers:
      description: For C(cpu), C(memory) and C(pids) - C(ok) (bool), C(hierarchy) (the key serving it) and C(reason).
      type: dict
      sample: {cpu: {ok: true, hierarchy: unified, reason: ""}}
    ok:
      description: Groups can be made for all three controllers.
      type: bool
backend:
  description: The backend a run would use here (V(cgroup2), V(cgroup1), V(hybrid) or V(process)).
  returned: always
  type: str
  sample: hybrid
plan:
  description: The callback's plan - the hierarchy and parent directory of each metric, whether its peak is the kernel's,
    notes, and C(base_usable) (false when the base could not be used and the own group was planned instead).
  returned: always
  type: dict
"""

import errno
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.perfstats.profiler.plugins.module_utils._cgroups import (
    BACKENDS,
    CPU,
    MEMORY,
    METRICS,
    PIDS,
    V1_CONTROLLER,
    V1_DELEGATED_FILES,
    V2_DELEGATED_FILES,
    GroupDir,
    base_dir,
    base_hierarchies,
    choose_plan,
    common_ancestor,
    detect_layout,
    home_layout,
    kernel_features,
    kernel_release,
    parse_mountinfo,
    probe_child,
    read_text,
    user_may,
)


def _resolve_user(spec):
    # type: (object) -> pwd.struct_passwd
    if spec is None or spec == "":
        return pwd.getpwuid(os.geteuid())
    text = str(spec)
    try:
        return pwd.getpwnam(text)
    except KeyError:
        if text.isdigit():
            return pwd.getpwuid(int(text))
        raise


def _user_gids(entry):
    # type: (pwd.struct_passwd) -> frozenset
    try:
        return frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except (AttributeError, OSError, KeyError):
        return frozenset([entry.pw_gid])


def _chain(anchor, target):
    # type: (str, str) -> list
    """Directories beneath ``anchor`` down to ``target`` (both absolute)."""
    anchor = anchor.rstrip("/")
    if not target.startswith(anchor + "/"):
        return []
    parts = [p for p in target[len(anchor) :].split("/") if p]
    out = []
    current = anchor
    for part in parts:
        current = current + "/" + part
        out.append(current)
    return out


def _base_entry(hierarchy, base):
    # type: (object, object) -> dict
    target = base_dir(hierarchy, base)
    if base and base.startswith("/"):
        anchor = hierarchy.mountpoint
    else:
        anchor = hierarchy.own_dir
    entry = {
        "key": hierarchy.key,
        "version": hierarchy.version,
        "dir": target,
        "anchor": anchor,
        "chain": _chain(anchor, target) if (anchor and target) else [],
        "exists": bool(target) and os.path.isdir(target),
        "controllers": sorted(hierarchy.controllers) if hierarchy.version == 1 else [],
        "subtree_control": [],
        "processes": None,
        "owner": None,
    }
    if entry["exists"]:
        group = GroupDir(target, hierarchy.version)
        if hierarchy.version == 2:
            entry["controllers"] = sorted(group.controllers() or ())
            entry["subtree_control"] = sorted(group.subtree_control() or ())
        procs = group.procs()
        entry["processes"] = None if procs is None else len(procs)
        try:
            entry["owner"] = os.stat(target).st_uid
        except OSError:
            pass
    return entry


def _offered_to(entry, uid, gids):
    # type: (dict, int, frozenset) -> list
    """v2 controllers a child of the base gets, or the user could give it."""
    offered = set(entry["subtree_control"])
    if entry["processes"] == 0 and user_may(os.path.join(entry["dir"], "cgroup.subtree_control"), uid, gids, os.W_OK):
        offered |= set(entry["controllers"])
    return sorted(offered)


def _delegation_entry(hierarchy, entry, user, gids, as_user, do_probe):
    # type: (object, dict, pwd.struct_passwd, frozenset, bool, bool) -> dict
    uid = user.pw_uid
    out = {
        "key": entry["key"],
        "dir": entry["dir"],
        "create": False,
        "probed": False,
        "offered": [],
        "enter_from_home": None,
        "reason": "",
    }
    if entry["dir"] is None:
        out["reason"] = "the group cannot be resolved in this hierarchy"
        return out
    if hierarchy.read_only:
        out["reason"] = "%s is mounted read-only" % hierarchy.mountpoint
        return out
    if not entry["exists"]:
        out["reason"] = "%s does not exist" % entry["dir"]
        return out
    files = V2_DELEGATED_FILES if hierarchy.version == 2 else V1_DELEGATED_FILES
    may_dir = user_may(entry["dir"], uid, gids, os.W_OK | os.X_OK)
    if hierarchy.version == 2:
        out["offered"] = _offered_to(entry, uid, gids)
        if hierarchy.own_dir:
            ancestor = common_ancestor(hierarchy.own_dir, entry["dir"])
            out["enter_from_home"] = user_may(os.path.join(ancestor, "cgroup.procs"), uid, gids, os.W_OK)
    else:
        out["offered"] = sorted(hierarchy.controllers)
    if as_user and do_probe:
        ok, err = probe_child(entry["dir"], hierarchy.version)
        out["probed"] = True
        out["create"] = ok
        if not ok:
            out["reason"] = "creating a group in %s failed: %s" % (entry["dir"], os.strerror(err or errno.EIO))
        return out
    out["create"] = may_dir
    if not may_dir:
        out["reason"] = "%s may not create groups in %s" % (user.pw_name, entry["dir"])
    else:
        missing = [
            name
            for name in files
            if os.path.exists(os.path.join(entry["dir"], name))
            and not user_may(os.path.join(entry["dir"], name), uid, gids, os.W_OK)
        ]
        if missing and uid != 0:
            out["reason"] = "%s may not write %s in %s" % (user.pw_name, ", ".join(missing), entry["dir"])
    return out


def _controllers(layout_hierarchies, delegated):
    # type: (list, list) -> dict
    """Per metric: the first hierarchy (v2 before v1) that lets the user make a group with it."""
    by_key = dict((d["key"], d) for d in delegated)
    answer = {}
    for metric in METRICS:
        candidates = []
        for hierarchy in layout_hierarchies:
            entry = by_key.get(hierarchy.key)
            if entry is None:
                continue
            if hierarchy.version == 2:
                if metric != CPU and metric not in entry["offered"]:
                    continue
                candidates.insert(0, (hierarchy, entry))
            elif V1_CONTROLLER[metric] in hierarchy.controllers:
                candidates.append((hierarchy, entry))
        chosen = None
        for hierarchy, entry in candidates:
            if entry["create"]:
                chosen = (hierarchy, entry)
                break
        if chosen is not None:
            answer[metric] = {"ok": True, "hierarchy": chosen[0].key, "reason": ""}
        elif candidates:
            answer[metric] = {"ok": False, "hierarchy": None, "reason": "; ".join(e["reason"] for _h, e in candidates)}
        else:
            answer[metric] = {"ok": False, "hierarchy": None, "reason": "no mounted hierarchy offers the %s controller" % metric}
    return answer


def _psutil():
    # type: () -> dict
    try:
        import psutil  # noqa: F401 - presence is the question
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return {"available": False, "version": None}
    return {"available": True, "version": getattr(psutil, "__version__", None)}


def gather(base, user_spec, backend, probe, check_mode):
    # type: (object, object, str, bool, bool) -> dict
    """Everything the module reports (also what its unit tests call)."""
    user = _resolve_user(user_spec)
    gids = _user_gids(user)
    as_user = user.pw_uid == os.geteuid()
    do_probe = bool(probe) and as_user and not check_mode

    raw = detect_layout()
    layout = home_layout(raw, base)
    mounts = parse_mountinfo(read_text("/proc/self/mountinfo"))
    hierarchies = []
    for own, home in zip(raw.hierarchies, layout.hierarchies):
        hierarchies.append(
            {
                "key": own.key,
                "version": own.version,
                "controllers": sorted(own.controllers),
                "mountpoint": own.mountpoint,
                "own_path": own.own_path,
                "own_dir": own.own_dir,
                "home_path": home.own_path,
                "home_dir": home.own_dir,
                "read_only": own.read_only,
            }
        )

    prepared = base_hierarchies(layout)
    entries = [_base_entry(h, base) for h in prepared]
    delegated = [_delegation_entry(h, e, user, gids, as_user, do_probe) for h, e in zip(prepared, entries)]
    controllers = _controllers(prepared, delegated)

    plan, base_usable = choose_plan(layout, backend, base)
    plan_dict = plan.as_dict()
    plan_dict["base_usable"] = base_usable
    kernel = kernel_features(layout)
    kernel["release"] = kernel_release()
    return {
        "cgroup_mode": layout.mode,
        "mounts": [
            {
                "version": m.version,
                "mountpoint": m.mountpoint,
                "root": m.root,
                "controllers": sorted(m.controllers),
                "read_only": m.read_only,
            }
            for m in mounts
        ],
        "hierarchies": hierarchies,
        "own_groups": dict((h["key"], h["own_path"]) for h in hierarchies),
        "kernel": kernel,
        "psutil": _psutil(),
        "base": {"group": base or None, "hierarchies": entries},
        "delegation": {
            "user": user.pw_name,
            "uid": user.pw_uid,
            "method": "probe" if do_probe else "permissions",
            "hierarchies": delegated,
            "controllers": controllers,
            "ok": all(controllers[m]["ok"] for m in (CPU, MEMORY, PIDS)),
        },
        "backend": plan.backend,
        "plan": plan_dict,
    }


def main():
    # type: () -> None
    module = AnsibleModule(
        argument_spec=dict(
            base_group=dict(type="str"),
            user=dict(type="str"),
            backend=dict(type="str", default="auto", choices=list(BACKENDS)),
            probe=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    base = module.params["base_group"]
    if base is not None:
        base = base.strip() or None
    if base and (".." in base.split("/") or "\n" in base):
        module.fail_json(msg="base_group must be a cgroup path without '..', such as /perfstats-base or perfstats-base")
    try:
        facts = gather(base, module.params["user"], module.params["backend"], module.params["probe"], module.check_mode)
    except KeyError:
        module.fail_json(msg="user %r does not exist on this host" % module.params["user"])
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
