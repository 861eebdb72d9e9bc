# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh clients' routes, controller side (pure): from each gateway's validated ranges minus its
excluded ranges, via the gateway's address of the range's family.

The ranges are validated by the egress gateway's own model (``_egress_gateway.model.validate``), so a
client routes exactly what the gateway forwards; CIDR subtraction is ``_net.subtract``, both families.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.model import validate
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError, family_of, subtract

ROLE_VARIABLE_PREFIX = "egress_gateway_"


def gateway_ranges(gateway, settings):
    """The destinations a gateway forwards: each validated range (top level, then networks') minus the
    excluded ranges, range by range (a range nothing excludes stays one route, as given)."""
    try:
        config = validate({"ranges": settings.get("ranges"), "networks": settings.get("networks"),
                           "excluded_ranges": settings.get("excluded_ranges")}, require_network_interface=False)
    except InputError as exc:
        raise InputError(f"{gateway}: {ROLE_VARIABLE_PREFIX}{exc.field}", problem=str(exc)[len(exc.field) + 2:]) \
            from None
    pieces = []
    for cidr in config.ranges:
        remaining = subtract([cidr], config.excluded_ranges) if config.excluded_ranges else (cidr,)
        pieces.append((cidr, remaining))
    return pieces


def client_routes(gateways, addresses, interface, metric):
    """{'routes': [{destination, via, dev, metric}], 'problems': [text]}.

    gateways: {gateway: {'ranges', 'networks', 'excluded_ranges'}} as in its inventory (role variables
    ``egress_gateway_*``), in the order the routes are wanted; addresses: {gateway: [its addresses on the
    network interface, without prefix length]}.
    """
    routes, problems = [], []
    for gateway, settings in gateways.items():
        known = list(addresses.get(gateway) or [])
        for cidr, remaining in gateway_ranges(gateway, settings or {}):
            family = family_of(cidr)
            via = next((address for address in known if family_of(address) == family), "")
            if not remaining:
                continue
            if not via:
                problems.append(f"{gateway}: no {'IPv6' if family == 'ipv6' else 'IPv4'} address on its network "
                                f"interface for range {cidr} (set egress_gateway_address)")
                continue
            routes += [{"destination": piece, "via": via, "dev": interface, "metric": metric} for piece in remaining]
    return {"routes": routes, "problems": problems}
