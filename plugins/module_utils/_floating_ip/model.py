# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Floating IPs, pure: validate the request, read the host's addresses, plan adds and removes, render
``ip -batch`` lines and the state file.

Addresses are canonical texts of ``_net`` (``192.168.1.100``, ``2001:db8::64``). Ownership: an address is
ours when the state file records it on an interface AND the host has it there. Anything else on the host
is foreign and never removed.
"""

from __future__ import annotations

import json
from collections import namedtuple

from ansible_collections.netkit.egress.plugins.module_utils import _net as net
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

IFNAMSIZ_CHARS = 15
LABEL_SUFFIX = ":nk"
STATE_VERSION = 1
STATES = ("present", "absent", "exact", "gathered")

# One address we hold (or want to hold): what ``ip addr add`` needs.
FloatingIP = namedtuple("FloatingIP", "address interface prefix_length")
# One address configured on the host, as ``ip -j addr show`` reports it.
HostAddress = namedtuple("HostAddress", "address interface prefix_length scope")


# ---- request validation ---------------------------------------------------------------------
def parse_addresses(values):
    """Canonical address texts of the request; an address listed twice (in any spelling) is an error."""
    addresses, seen = [], {}
    for index, value in enumerate(values or []):
        where = f"addresses[{index}]"
        if not isinstance(value, str) or "/" in value:
            raise InputError(where, value, "is not a valid IP address (give the address without prefix; "
                                           "use prefix_length to override the subnet's)")
        address = net.parse_address(value, where)
        if address in seen:
            raise InputError(where, problem=f"{address} is listed twice (also addresses[{seen[address]}])")
        seen[address] = index
        addresses.append(address)
    return addresses


def validate_interface(name, field="interface"):
    return None if name is None else net.validate_interface(name, field)


def max_prefix_length(address):
    return net.BITS[net.family_of(address)]


def validate_prefix_length(prefix_length, addresses):
    if prefix_length is None:
        return None
    for index, address in enumerate(addresses):
        if not 0 <= prefix_length <= max_prefix_length(address):
            raise InputError("prefix_length", problem=f"{prefix_length} is not valid for addresses[{index}] "
                                                      f"{address} (0-{max_prefix_length(address)})")
    return prefix_length


# ---- host state -----------------------------------------------------------------------------
def host_addresses(ip_addr_json):
    """Every IPv4/IPv6 address of ``ip -j addr show``."""
    found = []
    for link in ip_addr_json:
        for info in link.get("addr_info", []):
            if info.get("family") in ("inet", "inet6") and "local" in info:
                found.append(HostAddress(net.parse_address(info["local"], f"{link['ifname']} address"),
                                         link["ifname"], int(info["prefixlen"]), info.get("scope", "global")))
    return found


def host_network(ip_addr_json, default_routes):
    """What ``state=gathered`` reports of the host's network besides its floating IPs (egress NAT planning
    reads it instead of gathering facts): every address with its interface, every link with its up state, and the
    default routes.
    ``default_routes``: family -> ``ip -j route show default`` of that family."""
    loopbacks = {link["ifname"] for link in ip_addr_json if link.get("link_type") == "loopback"}
    addresses = [{"interface": link["ifname"], "address": info["local"], "prefix_length": int(info["prefixlen"]),
                  "scope": info.get("scope", "global"), "secondary": bool(info.get("secondary")),
                  "loopback": link["ifname"] in loopbacks}
                 for link in ip_addr_json for info in link.get("addr_info", [])
                 if info.get("family") in ("inet", "inet6") and "local" in info]
    routes = [{"family": family, "gateway": route.get("gateway"), "interface": route.get("dev")}
              for family, listed in default_routes.items() for route in listed if route.get("dst") == "default"]
    # Up: administratively up and with carrier (LOWER_UP), so a VLAN on a NIC that lost its carrier is down too.
    links = [{"interface": link["ifname"], "loopback": link["ifname"] in loopbacks,
              "up": "UP" in link.get("flags", []) and "LOWER_UP" in link.get("flags", [])}
             for link in ip_addr_json]
    return {"addresses": addresses, "default_routes": routes, "links": links}


def parse_state(text, path):
    """Records of the state file: FloatingIP tuples. A missing file means no records."""
    if not text or not text.strip():
        return []
    try:
        document = json.loads(text)
        return [FloatingIP(net.parse_address(entry["address"], "address"), entry["interface"],
                           int(entry["prefix_length"])) for entry in document["addresses"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError("state_file", problem=f"{path} is not a floating_ip state file ({exc}); move it "
                                               f"away if it is not ours") from None


def render_state(held):
    document = {"version": STATE_VERSION, "addresses": [as_dict(item) for item in sort_held(held)]}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def owned(records, on_host):
    """The recorded addresses the host really has on the recorded interface (with its real prefix)."""
    by_key = {(item.address, item.interface): item for item in on_host}
    held = []
    for record in records:
        present = by_key.get((record.address, record.interface))
        if present is not None:
            held.append(FloatingIP(record.address, record.interface, present.prefix_length))
    return held


# ---- desired state --------------------------------------------------------------------------
def _containing(address, on_host, interface=None):
    """Host addresses (not ours, global scope) whose subnet contains ``address``, longest prefix first."""
    wanted = net.cidr_of(address)
    candidates = [item for item in on_host
                  if item.scope == "global" and (interface is None or item.interface == interface)
                  and wanted in net.cidr_of(f"{item.address}/{item.prefix_length}")]
    return sorted(candidates, key=lambda item: -item.prefix_length)


def resolve(index, address, on_host, held, interface=None, prefix_length=None):
    """Where ``address`` goes: the interface whose subnet contains it (or the override) and the
    subnet's prefix (or the override). Refuses addresses the host has and we did not add."""
    where = f"addresses[{index}]"
    held_addresses = {item.address for item in held}
    foreign = [item for item in on_host if item.address == address and item.address not in held_addresses]
    if foreign:
        raise InputError(where, problem=f"{address} is already configured on {foreign[0].interface} and was "
                                        f"not added by floating_ip (a node address is never a floating IP)")
    others = [item for item in on_host if item.address not in held_addresses]
    containing = _containing(address, others, interface)
    if interface is None:
        if not containing:
            raise InputError(where, problem=f"{address} is not inside the subnet of any interface on this "
                                            f"host; set interface (and prefix_length)")
        best = [item for item in containing if item.prefix_length == containing[0].prefix_length]
        interfaces = sorted({item.interface for item in best})
        if len(interfaces) > 1:
            raise InputError(where, problem=f"{address} is inside subnets of several interfaces "
                                            f"({', '.join(interfaces)}); set interface")
        interface = interfaces[0]
    if prefix_length is None:
        prefix_length = containing[0].prefix_length if containing else max_prefix_length(address)
    return FloatingIP(address, interface, prefix_length)


def desired_addresses(addresses, interface, prefix_length, on_host, held, link_names):
    """Every requested address resolved (present/exact), after the overrides are checked."""
    interface = validate_interface(interface)
    if interface is not None and interface not in link_names:
        raise InputError("interface", problem=f"{interface} does not exist on this host")
    prefix_length = validate_prefix_length(prefix_length, addresses)
    return [resolve(index, address, on_host, held, interface, prefix_length)
            for index, address in enumerate(addresses)]


def plan(state, requested, desired, held):
    """(to_remove, to_add) for the state. ``desired`` is resolved for present/exact, ``requested``
    is the plain address list (absent)."""
    if state == "gathered":
        return [], []
    if state == "absent":
        wanted_gone = set(requested)
        return [item for item in held if item.address in wanted_gone], []
    held_set = set(held)
    held_by_address = {item.address: item for item in held}
    to_add = [item for item in desired if item not in held_set]
    # An address we hold elsewhere (other interface or prefix) moves: remove the old one first.
    to_remove = [held_by_address[item.address] for item in to_add if item.address in held_by_address]
    if state == "exact":
        desired_addresses = {item.address for item in desired}
        to_remove += [item for item in held if item.address not in desired_addresses]
    return to_remove, to_add


def after(held, to_remove, to_add):
    removed = set(to_remove)
    return sort_held([item for item in held if item not in removed] + list(to_add))


def sort_held(items):
    return sorted(items, key=lambda item: (net.address_value(item.address), item.interface))


def as_dict(item):
    return {"address": item.address, "interface": item.interface, "prefix_length": item.prefix_length}


# ---- commands -------------------------------------------------------------------------------
def label_for(interface):
    """IPv4 address label ``<ifname>:nk``, cut to the kernel's 15 characters."""
    return interface[:IFNAMSIZ_CHARS - len(LABEL_SUFFIX)] + LABEL_SUFFIX


def add_command(item, verb="add"):
    """``verb`` ``replace`` adds the address or leaves it as it is (what boot runs: it may run twice)."""
    # noprefixroute: no second subnet route, so the node's own address stays the source of its traffic.
    words = ["address", verb, f"{item.address}/{item.prefix_length}", "dev", item.interface, "noprefixroute"]
    if net.family_of(item.address) == "ipv4":
        words += ["label", label_for(item.interface)]
    else:
        # Deprecated (preferred lifetime 0): Linux compares IPv6 source candidates only up to their
        # prefix length, so a fresh floating IP would otherwise become the node's own source address.
        words += ["nodad", "preferred_lft", "0"]
    return " ".join(words)


def remove_command(item):
    return " ".join(["address", "del", f"{item.address}/{item.prefix_length}", "dev", item.interface])


def batch_commands(to_remove, to_add):
    return [remove_command(item) for item in to_remove] + [add_command(item) for item in to_add]


def undo_commands(to_remove, to_add):
    """``ip -force -batch`` lines that give back the addresses held before a batch that stopped half way."""
    return [remove_command(item) for item in to_add] + [add_command(item) for item in to_remove]
