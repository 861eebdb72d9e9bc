# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the egress_gateway module does, behind its thin shell: read the host once, decide the backend,
plan (``model``, ``plan``), render and diff through the chosen backend (``nftables`` or ``iptables``, one
interface), apply through the one ``_transaction`` engine (with roll back), persist.
"""

from __future__ import annotations

import gc
import os

from ansible_collections.netkit.egress.plugins.module_utils import _transaction
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import ipset, persist
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.backend import (
    VARIANTS, decide, needs_default_variant)
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.iptables import (
    IptablesBackend, stale_set_removal)
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.model import (
    desired_sysctls, route_probes, validate)
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.nftables import (
    TABLE_FAMILY, TABLE_NAME, NftablesBackend)
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.plan import build_plan, effective_ranges
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.route_lookup import (
    UNKNOWN, RouteLookup, default_route_device)
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._net import (
    FAMILIES, InputError, address_text, family_of)

BACKENDS = {"nftables": NftablesBackend, "iptables": IptablesBackend}


# ---- reading the host -----------------------------------------------------------------------
def read_firewall(host, default_variant=True):
    """Everything we need to decide and compare, read once: our nft table and the iptables-save dumps, and
    (when ``default_variant``) the variant of the plain ``iptables`` binary."""
    state = {"nft_available": host.has("nft"), "nft_table": None, "saves": {}}
    if state["nft_available"]:
        state["nft_table"] = host.nft_table_json(TABLE_FAMILY, TABLE_NAME)
    for variant in VARIANTS:
        for family in FAMILIES:
            binary = Host.iptables_binary(family, variant, "save")
            if host.has(binary):
                skip = variant == "legacy" and not Host.legacy_tables_loaded(family)
                state["saves"].setdefault(variant, {})[family] = "" if skip else host.run([binary])[1]
    state["ipset_available"] = host.has("ipset")
    state["ipsets"] = ipset.parse_save(host.ipset_save()) if state["ipset_available"] else {}
    version = host.iptables_version("") if default_variant and host.has("iptables") else None
    state["default_variant"] = None if version is None else ("legacy" if "legacy" in version else "nft")
    return state


def backends_on(firewall):
    """Every backend that may hold objects of ours: nftables, then each iptables variant present."""
    return [NftablesBackend(firewall)] + [IptablesBackend(firewall, variant) for variant in firewall["saves"]]


def chosen_backend(decision, firewall):
    """The one place that turns the decision into a backend object."""
    return BACKENDS[decision.backend](firewall, decision.variant)


def route_answers(host, probes):
    """{(family, address value): ``ip route get`` answer or None}. Answered from one read of the rules and
    tables where ``route_lookup`` is certain of the kernel's answer, by the kernel itself (one ``ip -batch``)
    elsewhere."""
    lookups, answers, ask = {}, {}, {}
    for probe in probes:
        family, value = probe
        lookup = lookups.get(family)
        if lookup is None:
            lookup = lookups[family] = RouteLookup(*host.routing_state(family), family)
        answer = lookup.lookup_value(value)
        if answer == UNKNOWN:
            ask[address_text(family, value)] = probe
        else:
            answers[probe] = answer
    asked = host.route_get_many(list(ask))
    answers.update({probe: asked.get(address) for address, probe in ask.items()})
    return answers


def resolve_interfaces(config, host):
    wanted = effective_ranges(config)
    if config.interface:
        return {cidr: config.interface for cidr in wanted}
    interfaces = {}
    for cidr in wanted:
        if cidr.endswith("/0"):  # canonical texts: only 0.0.0.0/0 and ::/0 end so
            family = family_of(cidr)
            interfaces[cidr] = default_route_device(host.routing_state(family)[1], family)
            if interfaces[cidr] is None:
                raise InputError(config.field_of(cidr), problem=f"{cidr} (internet) leaves by the {family} default "
                                 "route, and the host has none with one device; add one or set interface")
    ranges = [cidr for cidr in wanted if cidr not in interfaces]
    # The best probe of every range first, the second probe only where the first found nothing usable.
    # A local answer (dev lo) means the probe hit one of our own addresses, not the range's route.
    probes = {cidr: route_probes(cidr) for cidr in ranges}
    answers = route_answers(host, dict.fromkeys(cidr_probes[0] for cidr_probes in probes.values()))

    def usable(route):
        return route if route and route.get("dev") and route["dev"] != "lo" else None

    routes = {cidr: usable(answers.get(cidr_probes[0])) for cidr, cidr_probes in probes.items()}
    second = {cidr: cidr_probes[1] for cidr, cidr_probes in probes.items()
              if routes[cidr] is None and len(cidr_probes) > 1}
    if second:
        answers.update(route_answers(host, dict.fromkeys(second.values())))
        routes.update({cidr: usable(answers.get(probe)) for cidr, probe in second.items()})
    for cidr, route in routes.items():
        if route is None:
            raise InputError(config.field_of(cidr), problem=f"no {family_of(cidr)} route to {cidr} on the host; "
                                                            "add one or set interface")
        interfaces[cidr] = route["dev"]
    return {cidr: interfaces[cidr] for cidr in wanted}


# ---- desired vs current ---------------------------------------------------------------------
def current_objects(backends):
    """{label: canonical text} of everything we own now, across both backends."""
    objects = {}
    for backend in backends:
        objects.update(backend.current())
    return objects


def leftover_removals(firewall, backends, keep, keep_sets=()):
    """Remove what we own that is not part of the desired state (another backend, variant or family);
    the sets last, once no rule of ours names them any more."""
    transactions = [transaction for backend in backends for transaction in backend.removals(keep)]
    return transactions + stale_set_removal(firewall, keep_sets)


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


# ---- states ---------------------------------------------------------------------------------
def run_rendered(params, config):
    backend = "nftables" if params["backend"] == "auto" else params["backend"]
    ranges = effective_ranges(config)
    if ranges and not config.interface:
        raise InputError("interface", problem="required with state=rendered when there are ranges "
                                              "(rendering runs offline, without route lookups)")
    interfaces = {cidr: config.interface for cidr in ranges}
    plan = build_plan(config, interfaces)
    rendered = BACKENDS[backend].render_offline(plan)
    variant = params["iptables_variant"] if backend == "iptables" and params["iptables_variant"] != "auto" else None
    return dict(changed=False, backend=backend, iptables_variant=variant,
                backend_reason="state=rendered runs offline: "
                + ("backend auto renders nftables" if params["backend"] == "auto" else f"backend {backend} requested"),
                ranges=list(config.ranges), excluded_ranges=list(config.excluded_ranges), interfaces=interfaces,
                rendered=rendered, commands=[], before="", after="", sysctls=desired_sysctls(config.ranges),
                persisted_files=[], range_count=len(config.ranges),
                outbound_interfaces=sorted(set(interfaces.values())))


def run_gathered(host):
    firewall = read_firewall(host, default_variant=False)
    backends = backends_on(firewall)
    nft_backend, iptables_backends = backends[0], backends[1:]
    gathered_raw = {"nftables": firewall["nft_table"], "iptables": {}}
    for candidate in iptables_backends:
        raw = candidate.gathered_raw()
        if raw:
            gathered_raw["iptables"][candidate.variant] = raw
    found, backend, variant = None, None, None
    for candidate in backends:
        found = candidate.gather()
        if found:
            backend, variant = candidate.name, candidate.variant
            break
    gathered, interfaces = found if found else ({"state": "absent"}, {})
    ranges = gathered.get("ranges", []) + [c for n in gathered.get("networks", []) for c in n["ranges"]]
    objects = current_objects(backends)
    return dict(changed=False, backend=backend, iptables_variant=variant,
                backend_reason="state=gathered reports the backend whose objects exist on the host",
                ranges=list(dict.fromkeys(ranges)), excluded_ranges=[], interfaces=interfaces, gathered=gathered,
                gathered_raw=gathered_raw, commands=[], before=objects_text(objects, {}),
                after=objects_text(objects, {}), sysctls={}, persisted_files=[],
                range_count=len(dict.fromkeys(ranges)), outbound_interfaces=sorted(set(interfaces.values())))


def run_converge(module, host, params, config):
    present = params["state"] == "present"
    if present:
        links = host.link_names()
        for field_name in ("network_interface", "interface"):
            if params[field_name] and params[field_name] not in links:
                raise InputError(field_name, problem=f"interface {params[field_name]!r} does not exist on the host")
    firewall = read_firewall(host, needs_default_variant(params["backend"], params["iptables_variant"]))
    try:
        decision = decide(params["backend"], params["iptables_variant"], firewall["nft_available"],
                          firewall["default_variant"], firewall["saves"])
    except InputError:
        if present:
            raise
        decision = None
    backends = backends_on(firewall)
    before_objects = current_objects(backends)
    interfaces, rendered, boot, persisted = {}, None, None, []
    if present:
        interfaces = resolve_interfaces(config, host)
        plan = build_plan(config, interfaces)
        backend = chosen_backend(decision, firewall)
        desired, rendered, boot, transactions = backend.render(plan, before_objects)
        transactions += leftover_removals(firewall, backends, desired, backend.ipset_names(plan))
    else:
        desired, transactions = {}, leftover_removals(firewall, backends, {})

    wanted_sysctls = desired_sysctls(config.ranges) if present else {}
    current_sysctls = {name: host.sysctl_get(name) for name in wanted_sysctls}
    sysctl_changes = {name: value for name, value in wanted_sysctls.items() if current_sysctls[name] != value}

    wanted_files = {}
    if present and params["persist"]:
        wanted_files = persist.render_files(decision.backend, boot, wanted_sysctls, persist_binaries(host, decision),
                                            params["persist_dir"], params["sysctl_dir"], params["systemd_unit_dir"])
        persisted = sorted(wanted_files)
    writes, removals = persistence_changes(host, params, wanted_files)
    # Forwarding and files come after the firewall and are not rolled back with it (as before the engine).
    after_firewall = ([_transaction.Transaction("sysctl", "sysctl", value, target=(name,))
                       for name, value in sorted(sysctl_changes.items())]
                      + [_transaction.Transaction("persistence", "write", content, target=(path,))
                         for path, content in sorted(writes.items())]
                      + [_transaction.Transaction("persistence", "remove", "", target=(path,)) for path in removals])

    if module.check_mode or [transaction.tool for transaction in transactions] != ["nft"]:
        # A single nft transaction is all or nothing by itself: checking it first with `nft -c` would
        # only double its cost. Check mode, and runs with several transactions, check each one first.
        _transaction.check(host, transactions)
    commands = [_transaction.describe(transaction) for transaction in transactions + after_firewall]
    if not module.check_mode:
        _transaction.apply(host, transactions)
        for transaction in after_firewall:
            host.apply(transaction.tool, transaction.payload, transaction.target)
        unit_touched = any(path.endswith(persist.UNIT_FILE) for path in list(writes) + removals)
        if unit_touched and host.systemd_running() and host.has("systemctl"):
            host.boot_unit(persist.UNIT_FILE, enabled=present and params["persist"])
    after_sysctls = dict(current_sysctls, **sysctl_changes)
    changed = bool(transactions or after_firewall)
    result = dict(changed=changed,
                  backend=decision.backend if decision else None,
                  iptables_variant=decision.variant if decision else None,
                  backend_reason=decision.reason if decision else "no backend available",
                  ranges=list(config.ranges), excluded_ranges=list(config.excluded_ranges), interfaces=interfaces,
                  commands=commands, before=objects_text(before_objects, current_sysctls),
                  after=objects_text(desired, after_sysctls), sysctls=after_sysctls, persisted_files=persisted)
    if rendered is not None:
        result["rendered"] = rendered
    if module._diff:
        result["diff"] = {"before": result["before"], "after": result["after"]}
    result["range_count"] = len(config.ranges)
    result["outbound_interfaces"] = sorted(set(interfaces.values()))
    return result if params["full_result"] else summary_result(result, params)


# What a summary result keeps of the lists and texts that grow with the ranges (a 10,000-range run returns
# about 1 MB otherwise, and the controller handles every byte of it: half of a playbook task's time).
SUMMARY_DROPS = ("ranges", "interfaces", "rendered", "before", "after")


LIST_PARAMS = ("ranges", "excluded_ranges", "networks")


def summary_result(result, params):
    """``full_result: false``: counts instead of the lists, each command as its first line and its size.
    The ``invocation`` echo (shown only at -vvv) names the size of the list parameters instead of repeating
    them: AnsibleModule would otherwise return every range once more and scan it for secrets."""
    summary = {key: value for key, value in result.items() if key not in SUMMARY_DROPS}
    summary["commands"] = [_command_summary(command) for command in result["commands"]]
    module_args = dict(params)
    for name in LIST_PARAMS:
        if len(module_args.get(name) or ()) > 3:
            module_args[name] = f"({len(module_args[name]):,} items; full_result: true shows them)"
    summary["invocation"] = {"module_args": module_args}
    return summary


def _command_summary(command):
    lines = command.split("\n")
    return command if len(lines) <= 3 else f"{lines[0]} ... ({len(lines) - 2:,} lines of input)"


def run(module):
    params = module.params
    state = params["state"]
    # A run of 10,000 ranges builds some 100,000 small containers (parsed ranges, route probes, merged
    # intervals) that live until the process exits, and leaves almost no reference cycles (a few dozen): the
    # cyclic collector's passes over them found nothing to free and cost about a tenth of a run's work.
    collecting = gc.isenabled()
    gc.disable()
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
    except (InputError, HostError) as exc:
        module.fail_json(msg=str(exc))
    finally:
        if collecting:
            gc.enable()
