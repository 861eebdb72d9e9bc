# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ipset sets of the egress gateway's iptables backend (pure): render ``ipset restore`` input, read
``ipset save`` output back.

The iptables backend matches ranges with ``-m set --match-set``: a ``hash:net`` lookup costs one hash
probe per distinct prefix length, whether the set holds 10 or 10,000 CIDRs, where one rule per range costs
one rule evaluation per range for every packet (measured: 10,000 linear rules cut one TCP stream from
about 15 to 1 Gbit/s with iptables-nft). ipset works the same under both iptables variants.

We own the sets named ``netkit-egress-*``, and nothing else. A set's content is replaced atomically: the
new content is filled into ``<name>-new`` and swapped in (``ipset swap``), so a packet sees the old or the
new set, never a half-filled one. A run prepares (new sets, ``-new`` contents) before the rules change and
swaps after they changed, so a failed rule change is undone by destroying what was prepared, leaving the
host's sets untouched. ``render_restore`` does all of it in one ``ipset -exist restore`` input: that is the
boot file and the ``rendered`` output.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils._net import collapse

PREFIX = "netkit-egress-"
TEMP_SUFFIX = "-new"
SET_TYPE = "hash:net"
IPSET_FAMILY = {"ipv4": "inet", "ipv6": "inet6"}
FAMILY_OF_IPSET = {"inet": "ipv4", "inet6": "ipv6"}
SUFFIX = {"ipv4": "4", "ipv6": "6"}
MIN_MAXELEM = 65536
# hash:net refuses prefix length 0: the whole address space is stored as its two halves.
HALVES = {"0.0.0.0/0": ("0.0.0.0/1", "128.0.0.0/1"), "::/0": ("::/1", "8000::/1")}


def set_name(kind, index, family):
    """``netkit-egress-p3-dst4``: kind ``src``/``dst``, the path's index in the plan, the family."""
    return f"{PREFIX}p{index}-{kind}{SUFFIX[family]}"


def union_set_name(family):
    return f"{PREFIX}all{SUFFIX[family]}"


def is_ours(name):
    return name.startswith(PREFIX)


def desired_sets(plan, family=None):
    """{set name: (family, collapsed elements)} of the plan (of one family when given), in render order."""
    sets = {}
    for index, path in enumerate(plan.paths):
        if family and path.family != family:
            continue
        if path.network is not None:
            sets[set_name("src", index, path.family)] = (path.family, tuple(path.sources))
        sets[set_name("dst", index, path.family)] = (path.family, tuple(path.destinations))
    for set_family in plan.families:
        if plan.segmented and (family is None or set_family == family):
            sets[union_set_name(set_family)] = (set_family, tuple(plan.union[set_family]))
    return sets


def _members(elements):
    return [half for element in elements for half in HALVES.get(element, (element,))]


def render_restore(sets, existing=(), keep_temp=False):
    """``ipset -exist restore`` input that leaves each set with exactly its elements.

    ``create NAME`` without size options is a no-op for an existing set under ``-exist``; the content is
    built in ``NAME-new`` and swapped in. ``existing``: names on the host now, so that a ``-new`` set
    left over by an interrupted run is destroyed first (its size options may differ). ``keep_temp`` leaves
    ``NAME-new`` (holding the content swapped out) for a later ``destroy``, as undoing a commit needs."""
    lines = []
    for name, (family, elements) in sets.items():
        temp = name + TEMP_SUFFIX
        members = _members(elements)
        if temp in existing:
            lines.append(f"destroy {temp}")
        lines += [f"create {name} {SET_TYPE} family {IPSET_FAMILY[family]}",
                  f"create {temp} {SET_TYPE} family {IPSET_FAMILY[family]} maxelem {max(MIN_MAXELEM, len(members))}"]
        lines += [f"add {temp} {member}" for member in members]
        lines.append(f"swap {temp} {name}")
        if not keep_temp:
            lines.append(f"destroy {temp}")
    return "\n".join(lines) + "\n" if lines else ""


def render_prepare(sets, existing):
    """Before the rules change: sets that do not exist yet are created with their content; for sets that
    exist with other content, the new content is built in ``NAME-new`` (``render_commit`` swaps it in once the
    rules are in). Nothing a packet sees changes yet, and undoing it is destroying what it created."""
    lines = []
    for name, (family, elements) in changed_sets(sets, existing).items():
        members = _members(elements)
        target = name + TEMP_SUFFIX if name in existing else name
        if target in existing:
            lines.append(f"destroy {target}")  # left over by an interrupted run: its size may differ
        lines.append(f"create {target} {SET_TYPE} family {IPSET_FAMILY[family]} "
                     f"maxelem {max(MIN_MAXELEM, len(members))}")
        lines += [f"add {target} {member}" for member in members]
    return "\n".join(lines) + "\n" if lines else ""


def prepared_names(sets, existing):
    return [name + TEMP_SUFFIX if name in existing else name for name in changed_sets(sets, existing)]


def render_commit(sets, existing):
    """After the rules: the prepared content of existing sets swapped in (atomic per set)."""
    return "".join(f"swap {name}{TEMP_SUFFIX} {name}\ndestroy {name}{TEMP_SUFFIX}\n"
                   for name in changed_sets(sets, existing) if name in existing)


def changed_sets(sets, existing):
    """The desired sets whose family or content differs from the host's (``existing``: parse_save)."""
    return {name: value for name, value in sets.items() if existing.get(name) != value}


def render_destroy(names):
    return "".join(f"destroy {name}\n" for name in names)


def parse_save(text):
    """``ipset save`` output -> {name: (family, collapsed elements)} of our sets only."""
    families, members = {}, {}
    for line in (text or "").splitlines():
        words = line.split()
        if len(words) < 2 or not is_ours(words[1]):
            continue
        if words[0] == "create":
            family = words[words.index("family") + 1] if "family" in words[:-1] else "inet"
            families[words[1]] = FAMILY_OF_IPSET.get(family, family)
            members.setdefault(words[1], [])
        elif words[0] == "add" and len(words) >= 3:
            members.setdefault(words[1], []).append(words[2])
    return {name: (families.get(name), collapse(members.get(name, ())) if members.get(name) else ())
            for name in families}
