# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress_routes's run: validate, read our table once, plan (``model``), check what the kernel would
refuse, apply one ``ip -batch`` through the one transaction engine."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _transaction as transaction
from ansible_collections.netkit.egress.plugins.module_utils._egress_routes import model
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.module_utils._transaction import Transaction


def run(module):
    """The module's result; raises ``_net.InputError`` (bad input, nothing changed) or HostError."""
    host = Host(module)
    # Two runs against one host must not interleave their read-plan-apply.
    with HostLock():
        return converge(module, host)


def read_table(host, table, protocol):
    """(ours, foreign) routes of both families; a table that does not exist yet is empty."""
    ours, foreign = [], []
    for family in ("ipv4", "ipv6"):
        try:
            entries = host.ip_json("-N", "route", "show", "table", table, family=family)
        except HostError as exc:
            if "table does not exist" not in str(exc):
                raise
            entries = []
        family_ours, family_foreign = model.split_kernel_routes(entries, family, protocol)
        ours += family_ours
        foreign += family_foreign
    return ours, foreign


def check_devices_exist(host, routes):
    links = set(host.link_names())
    for index, route in enumerate(routes):
        if route.dev and route.dev not in links:
            raise InputError(f"routes[{index}].dev", route.dev, "does not exist on the host")


def check_next_hops_on_link(host, routes, to_add):
    """The kernel refuses a next hop it cannot reach directly; find that before changing anything,
    because ``ip -batch`` stops at the first failing line and would leave half the changes."""
    wanted = set(to_add)
    for index, route in enumerate(routes):
        if route not in wanted or not route.via or model.is_link_local(route.via):
            continue
        answer = host.route_get(route.via, route.family)
        if answer is None or answer.get("type", "unicast") != "unicast" or answer.get("gateway"):
            raise InputError(f"routes[{index}].via", problem=f"{route.via} is not on a directly connected network")
        if route.dev and answer.get("dev") != route.dev:
            raise InputError(f"routes[{index}].via", problem=f"{route.via} is reached through {answer.get('dev')}, "
                                                             f"not through dev {route.dev}")


def predict_devices(host, routes, to_add):
    """The kernel fills in the device of a route given only ``via``: predict it the same way
    (``ip route get VIA``), so that check mode reports what the real run will."""
    wanted = set(to_add)
    predicted = []
    for route in routes:
        if route in wanted and route.dev is None and route.via:
            answer = host.route_get(route.via, route.family) or {}
            route = route._replace(dev=answer.get("dev"))
        predicted.append(route)
    return predicted


def diff_text(routes):
    return "".join(f"{r.destination} via {r.via or '-'} dev {r.dev or '-'} metric {r.metric}\n"
                   for r in model.sort_routes(routes))


def batch_text(lines):
    return "".join(line + "\n" for line in lines)


def converge(module, host):
    params = module.params
    state = params["state"]
    table = model.validate_table(params["table"])
    protocol = model.validate_protocol(params["protocol"])
    model.validate_metric(params["metric"], "metric")
    desired = (model.validate_routes(params["routes"], params["metric"], require_next_hop=state != "absent")
               if state != "gathered" else [])
    if state in ("present", "exact"):
        check_devices_exist(host, desired)

    ours, foreign = read_table(host, table, protocol)
    plan = model.plan_routes(desired, ours, foreign, state)
    if state in ("present", "exact"):
        check_next_hops_on_link(host, desired, plan.add)
    commands = model.render_commands(plan, table, protocol)
    changed = bool(commands)
    after = predict_devices(host, plan.after, plan.add)
    if changed and not module.check_mode:
        # One batch for both families; its undo puts back the routes a batch that stopped half way changed.
        transaction.apply(host, [Transaction(
            "routes", "ip-batch", batch_text(commands),
            undo=batch_text(model.render_undo(plan, ours, table, protocol)))])
        after = model.sort_routes(read_table(host, table, protocol)[0])

    result = dict(changed=changed, routes=model.routes_as_dicts(after), added=model.routes_as_dicts(plan.add),
                  removed=model.routes_as_dicts(plan.remove), commands=commands)
    if module._diff:
        result["diff"] = dict(before=diff_text(ours), after=diff_text(after))
    return result
