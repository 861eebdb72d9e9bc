# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the egress_gateway module does, behind its thin shell: read the host once, decide the backend,
compute the desired state (pure functions of ``_egress_model``, ``_egress_nft``, ``_egress_iptables``,
``_egress_ipset``), diff it against the host's canonical state, apply it atomically (with rollback), persist.
"""

from __future__ import annotations

import os

from ansible_collections.netkit.egress.plugins.module_utils import _egress_iptables as ipt
from ansible_collections.netkit.egress.plugins.module_utils import _egress_ipset as ipset
from ansible_collections.netkit.egress.plugins.module_utils import _egress_nft as nft
from ansible_collections.netkit.egress.plugins.module_utils import _persist as persist
from ansible_collections.netkit.egress.plugins.module_utils._backend import BackendError, VARIANTS, decide
from ansible_collections.netkit.egress.plugins.module_utils._egress_model import (
    FAMILIES, ModelError, build_plan, desired_sysctls, family_of, route_probe_addresses, validate)
from ansible_collections.netkit.egress.plugins.module_utils import _rollback as rollback
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._route_lookup import UNKNOWN, RouteLookup


class Failure(Exception):
    """A user-facing error; nothing on the host has been changed when it is raised before apply."""


# ---- reading the host -----------------------------------------------------------------------
def read_firewall(host):
    """Everything we need to decide and compare, read once: our nft table and the iptables-save dumps."""
    state = {"nft_available": host.has("nft"), "nft_table": None, "saves": {}}
    if state["nft_available"]:
        state["nft_table"] = host.nft_table_json(nft.TABLE_FAMILY, nft.TABLE_NAME)
    for variant in VARIANTS:
        for family in FAMILIES:
            binary = Host.iptables_binary(family, variant, "save")
            if host.has(binary):
                skip = variant == "legacy" and not Host.legacy_tables_loaded(family)
                state["saves"].setdefault(variant, {})[family] = "" if skip else host.run([binary])[1]
    state["ipset_available"] = host.has("ipset")
    state["ipsets"] = ipset.parse_save(host.ipset_save()) if state["ipset_available"] else {}
    version = host.iptables_version("") if host.has("iptables") else None
    state["default_variant"] = None if version is None else ("legacy" if "legacy" in version else "nft")
    return state


def route_answers(host, addresses):
    """{address: ``ip route get`` answer or None}. Answered from one read of the rules and tables where
    ``_route_lookup`` is certain of the kernel's answer, by the kernel itself (one ``ip -batch``) elsewhere."""
    lookups, answers, ask = {}, {}, []
    for address in addresses:
        family = family_of(address)
        if family not in lookups:
            lookups[family] = RouteLookup(*host.routing_state(family), family)
        answer = lookups[family].lookup(address)
        if answer == UNKNOWN:
            ask.append(address)
        else:
            answers[address] = answer
    asked = host.route_get_many(ask)
    answers.update({address: asked.get(address) for address in ask})
    return answers


def resolve_interfaces(config, host):
    if config.interface:
        return {cidr: config.interface for cidr in config.ranges}
    # The best probe of every range first, the second probe only where the first found nothing usable.
    # A local answer (dev lo) means the probe hit one of our own addresses, not the range's route.
    probes = {cidr: route_probe_addresses(cidr) for cidr in config.ranges}
    answers = route_answers(host, list(dict.fromkeys(addresses[0] for addresses in probes.values())))

    def usable(route):
        return route if route and route.get("dev") and route["dev"] != "lo" else None

    second = [addresses[1] for addresses in probes.values()
              if len(addresses) > 1 and not usable(answers.get(addresses[0]))]
    answers.update(route_answers(host, list(dict.fromkeys(second))))
    interfaces = {}
    for cidr in config.ranges:
        route = next((usable(answers.get(address)) for address in probes[cidr] if usable(answers.get(address))), None)
        if route is None:
            raise Failure(f"{config.field_of(cidr)}: no {family_of(cidr)} route to {cidr} on the host; "
                          "add one or set interface")
        interfaces[cidr] = route["dev"]
    return interfaces


# ---- desired vs current ---------------------------------------------------------------------
def iptables_states(firewall):
    """{variant: {family: parsed state of our chains}}"""
    return {variant: {family: ipt.parse_save(text, firewall.get("ipsets")) for family, text in by_family.items()}
            for variant, by_family in firewall["saves"].items()}


def current_objects(firewall):
    """{label: canonical text} of everything we own now, across both backends."""
    objects = {}
    canonical = nft.current_canonical(firewall["nft_table"])
    if canonical is not None:
        objects["nftables"] = canonical
    for variant, by_family in iptables_states(firewall).items():
        for family, parsed in by_family.items():
            canonical = ipt.current_canonical(parsed)
            if canonical is not None:
                objects[f"iptables-{variant} {family}"] = canonical
    return objects


def desired_changes(plan, decision, firewall, current):
    """(desired objects, rendered, list of (label, kind, payload) actions) to go from ``current`` (what
    ``current_objects`` read) to desired."""
    states = iptables_states(firewall)
    desired, actions, keep_sets = {}, [], ()
    if decision.backend == "nftables":
        script = nft.render_script(plan)
        desired["nftables"] = nft.desired_canonical(plan)
        if current.get("nftables") != desired["nftables"]:
            actions.append(("nftables", "nft", script))
        rendered = script
    else:
        if not firewall.get("ipset_available"):
            raise Failure("backend: the iptables backend matches ranges with ipset sets, and the ipset binary is "
                          "not on the host (install the ipset package, or use backend: nftables)")
        rendered, boot = {}, {}
        for family in plan.families:
            parsed = states.get(decision.variant, {}).get(family)
            if parsed is None:
                raise Failure(f"backend: {Host.iptables_binary(family, decision.variant, 'save')} is not installed")
            label = f"iptables-{decision.variant} {family}"
            desired[label] = ipt.desired_canonical(plan, family)
            jumps = {table: parsed[table]["jumps"] > 0 for table in ipt.OUR_CHAINS}
            rendered[family] = ipt.render_restore(plan, family, jumps)
            boot[family] = ipt.render_restore(plan, family)
            if current.get(label) != desired[label]:
                actions.append((label, ("iptables", decision.variant, family), rendered[family]))
        sets, existing = ipset.desired_sets(plan), firewall["ipsets"]
        rendered["ipset"] = boot["ipset"] = ipset.render_restore(sets)
        if actions:
            # Sets are prepared before the rules (a rule cannot name a set that does not exist) and swapped
            # in after them: a failed rule change is undone by destroying what was prepared.
            prepare, commit = ipset.render_prepare(sets, existing), ipset.render_commit(sets, existing)
            if prepare:
                undo = ipset.render_destroy(ipset.prepared_names(sets, existing))
                actions.insert(0, ("ipset", ("ipset", undo), prepare))
            if commit:
                swapped = {name: existing[name] for name in ipset.changed_sets(sets, existing) if name in existing}
                # Undone by swapping the old content back; the undo of the preparation then destroys NAME-new.
                actions.append(("ipset", ("ipset", ipset.render_restore(swapped, keep_temp=True)), commit))
        rendered = {"apply": rendered, "boot": boot}
        keep_sets = set(sets)
    actions += leftover_removals(firewall, desired, states, keep_sets)
    return desired, rendered, actions


def leftover_removals(firewall, keep, states, keep_sets=()):
    """Remove what we own that is not part of the desired state (another backend, variant or family)."""
    actions = []
    if firewall["nft_table"] is not None and "nftables" not in keep:
        actions.append(("nftables", "nft", nft.render_delete_script()))
    for variant, by_family in states.items():
        for family, parsed in by_family.items():
            label = f"iptables-{variant} {family}"
            if label not in keep and ipt.current_canonical(parsed) is not None:
                actions.append((label, ("iptables", variant, family), ipt.render_removal(parsed)))
    stale_sets = [name for name in firewall.get("ipsets", {}) if name not in keep_sets]
    if stale_sets:
        # Last: only once no rule of ours names them any more.
        actions.append(("ipset", ("ipset", ""), ipset.render_destroy(stale_sets)))
    return actions


def is_ipset(kind):
    return isinstance(kind, tuple) and kind[0] == "ipset"


def describe(action):
    label, kind, payload = action
    if kind == "nft":
        return f"nft -f - <<EOF\n{payload}EOF"
    if is_ipset(kind):
        return f"ipset -exist restore <<EOF\n{payload}EOF"
    variant, family = kind[1:]
    return f"{Host.iptables_binary(family, variant, 'restore')} --noflush <<EOF\n{payload}EOF"


def validate_actions(host, actions, firewall=None):
    """Let the kernel check every transaction before the first one is applied. ipset has no test mode:
    its input is rendered from validated CIDRs and generated names only. iptables-restore --test asks the
    kernel for every set a rule names, so matches on sets this run creates are left out of the test."""
    existing_sets = set((firewall or {}).get("ipsets", {}))
    for _label, kind, payload in actions:
        if kind == "nft":
            host.nft_check(payload)
        elif not is_ipset(kind):
            variant, family = kind[1:]
            host.iptables_restore(family, variant, ipt.testable(payload, existing_sets), test=True)


def apply_actions(host, actions, firewall):
    """Apply every transaction; when one fails, put back what the earlier ones (and a half-committed
    iptables-restore file, whose tables commit one by one) changed, and say so in the error."""
    # The table's text is needed only to undo an nft transaction when a later one fails (reading it
    # costs as much as the apply itself at 10,000 ranges).
    nft_before = host.nft_table_text(nft.TABLE_FAMILY, nft.TABLE_NAME) \
        if any(kind == "nft" for _label, kind, _payload in actions[:-1]) else None
    for index, (label, kind, payload) in enumerate(actions):
        try:
            if kind == "nft":
                host.nft_apply(payload)
            elif is_ipset(kind):
                host.ipset_restore(payload)
            else:
                variant, family = kind[1:]
                host.iptables_restore(family, variant, payload)
        except HostError as exc:
            # An nft -f that failed changed nothing (one kernel transaction); an iptables-restore file
            # may have committed its first table.
            done = actions[:index] + ([] if kind == "nft" else [actions[index]])
            problems = undo_actions(host, done, firewall, nft_before)
            outcome = (f"rolling back failed too: {'; '.join(problems)}" if problems
                       else "everything applied before it was rolled back, the host is as it was")
            raise HostError(f"applying {label} failed: {exc}; {outcome}") from None


def undo_actions(host, done, firewall, nft_before):
    problems = []
    for label, kind, _payload in reversed(done):
        try:
            if kind == "nft":
                host.nft_apply(rollback.nft_table_restore(nft.TABLE_FAMILY, nft.TABLE_NAME, nft_before))
            elif is_ipset(kind):
                if kind[1]:
                    host.ipset_restore(kind[1])
            else:
                variant, family = kind[1:]
                text = rollback.iptables_restore_previous(firewall["saves"][variant][family],
                                                          host.iptables_save(family, variant))
                if text:
                    host.iptables_restore(family, variant, text)
        except HostError as exc:
            problems.append(f"{label}: {exc}")
    return problems


def objects_text(objects, sysctls):
    parts = [f"# {label}\n{text}" for label, text in sorted(objects.items())]
    if sysctls:
        parts.append("# sysctl\n" + "".join(f"{name} = {value}\n" for name, value in sorted(sysctls.items())))
    return "".join(parts)


# ---- persistence ----------------------------------------------------------------------------
def persist_binaries(host, decision):
    binaries = {"sysctl": host.which("sysctl") or "/sbin/sysctl", "nft": host.which("nft") or "/usr/sbin/nft"}
    if decision.variant:
        for family in FAMILIES:
            name = Host.iptables_binary(family, decision.variant, "restore")
            binaries[family] = host.which(name) or f"/usr/sbin/{name}"
        binaries["ipset"] = host.which("ipset") or "/usr/sbin/ipset"
    return binaries


def persistence_changes(host, params, wanted):
    """(files to write {path: content}, files to remove [path])."""
    manifest_path = os.path.join(params["persist_dir"], persist.MANIFEST_FILE)
    owned = set(persist.all_paths(params["persist_dir"], params["sysctl_dir"], params["systemd_unit_dir"]))
    owned |= set(persist.parse_manifest(host.read_file(manifest_path))) | {manifest_path}
    desired = dict(wanted)
    if wanted:
        desired[manifest_path] = persist.render_manifest(wanted)
    writes = {path: content for path, content in desired.items() if host.read_file(path) != content}
    removals = sorted(path for path in owned if path not in desired and os.path.exists(path))
    return writes, removals


def systemd_running():
    return os.path.isdir("/run/systemd/system")


# ---- states ---------------------------------------------------------------------------------
def run_rendered(params, config):
    backend = "nftables" if params["backend"] == "auto" else params["backend"]
    if config.ranges and not config.interface:
        raise Failure("interface: required with state=rendered when there are ranges "
                      "(rendering runs offline, without route lookups)")
    interfaces = {cidr: config.interface for cidr in config.ranges}
    plan = build_plan(config, interfaces)
    if backend == "nftables":
        rendered = nft.render_script(plan)
        variant = None
    else:
        rendered = {family: ipt.render_restore(plan, family) for family in plan.families}
        rendered["ipset"] = ipset.render_restore(ipset.desired_sets(plan))
        variant = params["iptables_variant"] if params["iptables_variant"] != "auto" else None
    return dict(changed=False, backend=backend, iptables_variant=variant,
                backend_reason="state=rendered runs offline: "
                + ("backend auto renders nftables" if params["backend"] == "auto" else f"backend {backend} requested"),
                ranges=list(config.ranges), interfaces=interfaces, rendered=rendered, commands=[],
                before="", after="", sysctls=desired_sysctls(config.ranges), persisted_files=[])


def run_gathered(host):
    firewall = read_firewall(host)
    gathered_raw = {"nftables": firewall["nft_table"], "iptables": {}}
    found = nft.gather(firewall["nft_table"])
    backend, variant = ("nftables", None) if found else (None, None)
    for candidate, by_family in iptables_states(firewall).items():
        for family, parsed in by_family.items():
            if ipt.current_canonical(parsed) is not None:
                gathered_raw["iptables"].setdefault(candidate, {})[family] = ipt.current_canonical(parsed)
        if found is None:
            found = ipt.gather(by_family)
            if found:
                backend, variant = "iptables", candidate
                found[0]["iptables_variant"] = candidate
    gathered, interfaces = found if found else ({"state": "absent"}, {})
    ranges = gathered.get("ranges", []) + [c for n in gathered.get("networks", []) for c in n["ranges"]]
    objects = current_objects(firewall)
    return dict(changed=False, backend=backend, iptables_variant=variant,
                backend_reason="state=gathered reports the backend whose objects exist on the host",
                ranges=list(dict.fromkeys(ranges)), interfaces=interfaces, gathered=gathered,
                gathered_raw=gathered_raw, commands=[], before=objects_text(objects, {}),
                after=objects_text(objects, {}), sysctls={}, persisted_files=[])


def run_converge(module, host, params, config):
    present = params["state"] == "present"
    if present:
        links = host.link_names()
        for field_name in ("network_interface", "interface"):
            if params[field_name] and params[field_name] not in links:
                raise Failure(f"{field_name}: interface {params[field_name]!r} does not exist on the host")
    firewall = read_firewall(host)
    try:
        decision = decide(params["backend"], params["iptables_variant"], firewall["nft_available"],
                          firewall["default_variant"], firewall["saves"])
    except BackendError as exc:
        if present:
            raise Failure(str(exc)) from None
        decision = None
    before_objects = current_objects(firewall)
    interfaces, rendered, persisted = {}, None, []
    if present:
        interfaces = resolve_interfaces(config, host)
        plan = build_plan(config, interfaces)
        desired, rendered, actions = desired_changes(plan, decision, firewall, before_objects)
    else:
        desired, actions = {}, leftover_removals(firewall, {}, iptables_states(firewall))

    wanted_sysctls = desired_sysctls(config.ranges) if present else {}
    current_sysctls = {name: host.sysctl_get(name) for name in wanted_sysctls}
    sysctl_changes = {name: value for name, value in wanted_sysctls.items() if current_sysctls[name] != value}

    wanted_files = {}
    if present and params["persist"]:
        rules = rendered if decision.backend == "nftables" else rendered["boot"]
        wanted_files = persist.render_files(decision.backend, rules, wanted_sysctls, persist_binaries(host, decision),
                                            params["persist_dir"], params["sysctl_dir"], params["systemd_unit_dir"])
        persisted = sorted(wanted_files)
    writes, removals = persistence_changes(host, params, wanted_files)

    if module.check_mode or [kind for _label, kind, _payload in actions] != ["nft"]:
        # A single nft transaction is all or nothing by itself: checking it first with `nft -c` would
        # only double its cost. Check mode, and runs with several transactions, check each one first.
        validate_actions(host, actions, firewall)
    commands = [describe(action) for action in actions]
    commands += [f"sysctl -w {name}={value}" for name, value in sorted(sysctl_changes.items())]
    commands += [f"write {path}" for path in sorted(writes)] + [f"remove {path}" for path in removals]
    if not module.check_mode:
        apply_actions(host, actions, firewall)
        for name, value in sorted(sysctl_changes.items()):
            host.sysctl_set(name, value)
        for path, content in sorted(writes.items()):
            host.write_file(path, content)
        for path in removals:
            host.remove_file(path)
        unit_touched = any(path.endswith(persist.UNIT_FILE) for path in list(writes) + removals)
        if unit_touched and systemd_running() and host.has("systemctl"):
            host.run(["systemctl", "daemon-reload"])
            if present and params["persist"]:
                host.run(["systemctl", "enable", persist.UNIT_FILE])
    after_sysctls = dict(current_sysctls, **sysctl_changes)
    changed = bool(actions or sysctl_changes or writes or removals)
    result = dict(changed=changed,
                  backend=decision.backend if decision else None,
                  iptables_variant=decision.variant if decision else None,
                  backend_reason=decision.reason if decision else "no backend available",
                  ranges=list(config.ranges), interfaces=interfaces, commands=commands,
                  before=objects_text(before_objects, current_sysctls),
                  after=objects_text(desired, after_sysctls),
                  sysctls=after_sysctls, persisted_files=persisted)
    if rendered is not None:
        result["rendered"] = rendered if decision.backend == "nftables" else rendered["apply"]
    if module._diff:
        result["diff"] = {"before": result["before"], "after": result["after"]}
    return result


def run(module):
    params = module.params
    state = params["state"]
    try:
        config = validate(params, require_network_interface=state in ("present", "rendered"))
        if state == "rendered":
            return run_rendered(params, config)
        host = Host(module)
        # Two runs against one host must not interleave their read-decide-apply.
        with HostLock():
            if state == "gathered":
                return run_gathered(host)
            return run_converge(module, host, params, config)
    except (ModelError, Failure) as exc:
        module.fail_json(msg=str(exc))
    except HostError as exc:
        module.fail_json(msg=str(exc))
