# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh clients' routes, controller side (pure): from each gateway's validated ranges minus its
excluded ranges, via the gateway's address of the range's family, and the checks of the whole mesh that
the planning play runs before any host changes.

The ranges are validated by the egress gateway's own model (``_egress_gateway.model.validate``), so a
client routes exactly what the gateway forwards; CIDR subtraction is ``_net.subtract``, both families.

The rules (docs/egress_gateway.md, "Several networks" and "One range on two gateways"):

* a gateway without ``networks`` offers every range to every member, via its first address of the range's
  family (``egress_gateway_address``, else its network interface's);
* a gateway with ``networks`` offers a network's ranges of one family only to members with an address of
  that family inside the network's cidr (the source the gateway's rules accept), via the network's
  ``address`` of that family, else the gateway's address inside the network's cidr; its top-level ranges
  are dropped by the gateway for everybody, so nobody routes them;
* one destination offered to a member by two gateways (or by two networks with different addresses) is
  refused naming both: a member has one route per destination, and a second route with another metric would
  be a standby that nothing ever switches to (the kernel does not notice a dead next hop on a shared link).
  Nested ranges are fine: the longest prefix wins.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.model import validate
from ansible_collections.netkit.egress.plugins.module_utils._net import (
    FAMILIES, InputError, cidr_of, family_of, parse_address, subtract)

ROLE_VARIABLE_PREFIX = "egress_gateway_"
FAMILY_NAMES = {"ipv4": "IPv4", "ipv6": "IPv6"}


def gateway_config(gateway, settings):
    """The gateway's inventory validated by the module's own model; errors name the gateway and the role
    variable (``gw1: egress_gateway_ranges[2]: ...``)."""
    try:
        return validate({"ranges": settings.get("ranges"), "networks": settings.get("networks"),
                         "excluded_ranges": settings.get("excluded_ranges")}, require_network_interface=False)
    except InputError as exc:
        raise InputError(f"{gateway}: {ROLE_VARIABLE_PREFIX}{exc.field}", problem=str(exc)[len(exc.field) + 2:]) \
            from None


def configured_addresses(gateway, value):
    """``egress_gateway_address`` (one address or a list; a ``/prefix`` is ignored) -> address texts; errors
    name the gateway and the variable."""
    field = f"{gateway}: {ROLE_VARIABLE_PREFIX}address"
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(field, value, "is not an address or a list of addresses")
    return [parse_address(item.split("/", 1)[0] if isinstance(item, str) else item, f"{field}[{index}]")
            for index, item in enumerate(items)]


def _remaining(config, cidr):
    return subtract([cidr], config.excluded_ranges) if config.excluded_ranges else (cidr,)


def _inside(address, cidrs):
    return any(cidr_of(address) in cidr_of(cidr) for cidr in cidrs)


def _first(addresses, family, cidrs=None):
    return next((address for address in addresses
                 if family_of(address) == family and (cidrs is None or _inside(address, cidrs))), "")


def _offers(gateway, config, known, member_addresses):
    """(range, role variable naming it, via, what to set when via is missing) this gateway offers the member."""
    if not config.networks:
        for cidr in config.ranges:
            family = family_of(cidr)
            missing = (f"{gateway}: no {FAMILY_NAMES[family]} address on its network interface for range {cidr} "
                       "(set egress_gateway_address)")
            yield cidr, ROLE_VARIABLE_PREFIX + config.field_of(cidr), _first(known, family), missing
        return
    for index, network in enumerate(config.networks):
        for family in FAMILIES:
            own = network.cidrs_of(family)
            if not own or not any(family_of(address) == family and _inside(address, own)
                                  for address in member_addresses):
                continue
            via = network.addresses.get(family) or _first(known, family, own)
            missing = (f"{gateway}: no {FAMILY_NAMES[family]} address inside network {network.name}'s cidr "
                       f"{', '.join(own)} for its ranges (set egress_gateway_networks[{index}].address)")
            for range_index, cidr in enumerate(network.ranges):
                if family_of(cidr) == family:
                    yield cidr, f"{ROLE_VARIABLE_PREFIX}networks[{index}].ranges[{range_index}]", via, missing


def client_routes(gateways, addresses, interface, metric, member_addresses=(), member=None, internet=True):
    """{'routes': [{destination, via, dev, metric}], 'problems': [text]} of one member.

    gateways: {gateway: {'ranges', 'networks', 'excluded_ranges'}} as in its inventory (role variables
    ``egress_gateway_*``), in the order the routes are wanted; addresses: {gateway: [its addresses on the
    network interface, without prefix length]}; member_addresses: the member's own addresses on its network
    interface (they decide which networks of a segmented gateway it belongs to); internet: whether the member
    routes the gateways' internet ranges (0.0.0.0/0, ::/0) too.
    """
    configs = {gateway: gateway_config(gateway, settings or {}) for gateway, settings in gateways.items()}
    return _member_routes(configs, addresses, interface, metric, member_addresses, member, internet)


def _member_routes(configs, addresses, interface, metric, member_addresses, member, internet):
    """client_routes of gateways already validated ({gateway: model config}): the planning play validates
    each gateway once for all its members."""
    own_addresses = [parse_address(address.split("/", 1)[0], "member address") for address in member_addresses]
    routes, problems, chosen = [], [], {}
    for gateway, config in configs.items():
        known = list(addresses.get(gateway) or [])
        for cidr, field_name, via, missing in _offers(gateway, config, known, own_addresses):
            if not internet and cidr_of(cidr).prefix == 0:
                continue
            remaining = _remaining(config, cidr)
            if not remaining:
                continue
            if not via:
                problems.append(missing)
                continue
            for piece in remaining:
                first = chosen.get(piece)
                if first is None:
                    chosen[piece] = (gateway, field_name, via)
                    routes.append({"destination": piece, "via": via, "dev": interface, "metric": metric})
                elif (first[0], first[2]) != (gateway, via):
                    problems.append(f"{member + ': ' if member else ''}{piece} is offered by {first[0]} ({first[1]}, "
                                    f"via {first[2]}) and by {gateway} ({field_name}, via {via}): a member has one "
                                    "route per destination, so keep the range on one gateway (a longer prefix "
                                    "elsewhere wins by longest prefix)")
    return {"routes": routes, "problems": list(dict.fromkeys(problems))}


def mesh_plan(gateways, members):
    """The whole mesh at once, for the planning play: {'routes': {member: [route]}, 'problems': [text]}.

    gateways: {gateway: {'state', 'ranges', 'networks', 'excluded_ranges', 'address' (egress_gateway_address),
    'interface', 'interface_addresses' (read from its network interface)}}; members: {member: {'state',
    'interface', 'metric', 'addresses' (its own on its network interface), 'internet'}}. Every problem of every host is
    reported, each naming the host and the variable.
    """
    problems, offering, known = [], {}, {}
    for gateway, settings in gateways.items():
        try:
            config = gateway_config(gateway, settings)
            configured = configured_addresses(gateway, settings.get("address") or [])
        except InputError as exc:
            problems.append(str(exc))
            continue
        interface_addresses = [address.split("/", 1)[0] for address in settings.get("interface_addresses") or []]
        known[gateway] = configured + interface_addresses
        for index, network in enumerate(config.networks):
            for address in network.addresses.values():
                if settings.get("interface_addresses") is not None and address not in interface_addresses:
                    problems.append(f"{gateway}: egress_gateway_networks[{index}].address: {address} is not an "
                                    f"address of its network interface {settings.get('interface')} "
                                    f"({', '.join(interface_addresses) or 'none'})")
        if settings.get("state", "present") == "present":
            offering[gateway] = config
    routes = {}
    for member, settings in members.items():
        if settings.get("state", "present") != "present":
            routes[member] = []
            continue
        others = {gateway: value for gateway, value in offering.items() if gateway != member}
        planned = _member_routes(others, known, settings.get("interface"), settings.get("metric", 100),
                                 settings.get("addresses") or [], member, settings.get("internet", True))
        routes[member] = planned["routes"]
        problems += planned["problems"]
    return {"routes": routes, "problems": list(dict.fromkeys(problems))}
