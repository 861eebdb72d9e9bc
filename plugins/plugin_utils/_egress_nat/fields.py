# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the fields of egress NAT inventory objects (pure): scalars, lists, mappings, labels, and the
two shapes an object may come in.

Gateway groups and policies arrive either in snake_case or verbatim in the Kubernetes manifest shape of
the GKE guide (``kind: NetworkGatewayGroup`` / ``kind: EgressNATPolicy``). Addresses and CIDRs are parsed
by ``module_utils/_net``; every error is a ``_net.InputError`` naming the object and the field as the
user wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

API_GROUP_PREFIX = "networking.gke.io/"
MANIFEST_KEYS = ("kind", "apiVersion", "metadata", "spec")
DEFAULT_NAMESPACE = "kube-system"
NAME_RULE = "1-63 characters of letters, digits, '_', '.', '-'"


def type_name(value):
    return "null" if value is None else type(value).__name__


def address(value, where):
    """An IPv4/IPv6 address without prefix, in canonical text form."""
    return _net.parse_address(value, where)


def cidr(value, where):
    """A network in CIDR notation (a bare address means a single host), canonical text; host bits set
    are an error naming the network."""
    return _net.normalise_cidr(value, where, strict=True, strip=True)


def object_name(value, where):
    try:
        return _net.validate_name(value, where)
    except InputError:
        raise InputError(where, value, f"is not a valid name ({NAME_RULE})") from None


def namespace(value, where):
    return DEFAULT_NAMESPACE if value is None else object_name(value, where)


def as_list(value, where, required=False):
    if value is None:
        if required:
            raise InputError(where, problem="is required")
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise InputError(where, problem=f"expected a list, got {type_name(value)}")
    return list(value)


def as_mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(where, problem=f"expected a mapping, got {type_name(value)}")
    return value


def reject_unknown(mapping, allowed, where):
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise InputError(where, problem=f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def label_value(value, where):
    # YAML turns `enabled: true` and `tier: 1` into non-strings; Kubernetes label values are strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InputError(where, value, "is not a valid label value")


def labels(value, where):
    return {str(key): label_value(item, f"{where}.{key}") for key, item in as_mapping(value, where).items()}


def either_case(raw, where, pairs):
    """A mapping whose keys may each be written in camelCase or snake_case (``pairs``: (camel, snake)):
    the key used for each pair (camel when present), after refusing any other key."""
    mapping = as_mapping(raw, where)
    reject_unknown(mapping, tuple(key for pair in pairs for key in pair), where)
    return mapping, [camel if camel in mapping else snake for camel, snake in pairs]


def is_manifest(raw):
    return isinstance(raw, Mapping) and any(key in raw for key in MANIFEST_KEYS)


def unpack(raw, where, kind, spec_fields):
    """Read an object of either shape: (values by snake_case key, field path by snake_case key).
    ``spec_fields``: (snake_case key, manifest spec key) pairs."""
    if not isinstance(raw, Mapping):
        raise InputError(where, problem=f"expected a mapping, got {type_name(raw)}")
    if not is_manifest(raw):
        keys = ("name", "namespace") + tuple(snake for snake, _camel in spec_fields)
        reject_unknown(raw, keys, where)
        return {key: raw.get(key) for key in keys}, {key: key for key in keys}
    if raw.get("kind", kind) != kind:
        raise InputError(f"{where}: kind", problem=f"expected {kind}, got {raw.get('kind')!r}")
    api_version = raw.get("apiVersion")
    if api_version is not None and not str(api_version).startswith(API_GROUP_PREFIX):
        raise InputError(f"{where}: apiVersion", problem=f"expected {API_GROUP_PREFIX}v1, got {api_version!r}")
    reject_unknown(raw, MANIFEST_KEYS + ("status",), where)
    metadata = as_mapping(raw.get("metadata"), f"{where}: metadata")
    spec = as_mapping(raw.get("spec"), f"{where}: spec")
    reject_unknown(spec, tuple(camel for _snake, camel in spec_fields), f"{where}: spec")
    values = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    paths = {"name": "metadata.name", "namespace": "metadata.namespace"}
    for snake, camel in spec_fields:
        values[snake] = spec.get(camel)
        paths[snake] = f"spec.{camel}"
    return values, paths
