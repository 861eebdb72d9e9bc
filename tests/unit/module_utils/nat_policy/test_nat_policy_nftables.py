"""Pure nftables side of nat_policy: rendering and reading our table back.

The *_TABLE_JSON fixtures are ``nft -j list table inet netkit_egress_nat`` output (nftables 1.0.6)
after loading this module's render of the POLICIES below (note nft's canonical forms: merged
elements, ``& 0xff01ffff``, ``srcnat - 10`` as prio 90).
"""

import json

import pytest

from ansible_collections.netkit.egress.plugins.module_utils import _nat_model as model
from ansible_collections.netkit.egress.plugins.module_utils import _nat_nft as nft

SOURCE_TABLE_JSON = json.loads(r'''[
{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "netkit_egress_nat", "handle": 5}},
{
 "set": {
  "family": "inet",
  "name": "p0_src",
  "table": "netkit_egress_nat",
  "type": "ipv6_addr",
  "handle": 3,
  "flags": [
   "interval"
  ],
  "elem": [
   {
    "prefix": {
     "addr": "2001:db8:10::",
     "len": 64
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p0_dst",
  "table": "netkit_egress_nat",
  "type": "ipv6_addr",
  "handle": 4,
  "flags": [
   "interval"
  ],
  "elem": [
   {
    "prefix": {
     "addr": "::",
     "len": 0
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p1_src",
  "table": "netkit_egress_nat",
  "type": "ipv4_addr",
  "handle": 5,
  "flags": [
   "interval"
  ],
  "elem": [
   "10.10.1.5",
   {
    "prefix": {
     "addr": "10.10.2.0",
     "len": 23
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p1_dst",
  "table": "netkit_egress_nat",
  "type": "ipv4_addr",
  "handle": 6,
  "flags": [
   "interval"
  ],
  "elem": [
   {
    "prefix": {
     "addr": "203.0.113.0",
     "len": 24
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p1_exc",
  "table": "netkit_egress_nat",
  "type": "ipv4_addr",
  "handle": 7,
  "flags": [
   "interval"
  ],
  "elem": [
   "203.0.113.20"
  ]
 }
},
{
 "chain": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "name": "prerouting",
  "handle": 1,
  "type": "filter",
  "hook": "prerouting",
  "prio": -150,
  "policy": "accept"
 }
},
{
 "chain": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "name": "postrouting",
  "handle": 2,
  "type": "nat",
  "hook": "postrouting",
  "prio": 90,
  "policy": "accept"
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "prerouting",
  "handle": 8,
  "comment": "policy v6",
  "expr": [
   {
    "match": {
     "op": "in",
     "left": {
      "ct": {
       "key": "state"
      }
     },
     "right": "new"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "ct": {
       "key": "direction"
      }
     },
     "right": "original"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip6",
       "field": "saddr"
      }
     },
     "right": "@p0_src"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip6",
       "field": "daddr"
      }
     },
     "right": "@p0_dst"
    }
   },
   {
    "mangle": {
     "key": {
      "ct": {
       "key": "mark"
      }
     },
     "value": {
      "|": [
       {
        "&": [
         {
          "ct": {
           "key": "mark"
          }
         },
         4278386687
        ]
       },
       131072
      ]
     }
    }
   }
  ]
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "prerouting",
  "handle": 9,
  "comment": "policy web",
  "expr": [
   {
    "match": {
     "op": "in",
     "left": {
      "ct": {
       "key": "state"
      }
     },
     "right": "new"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "ct": {
       "key": "direction"
      }
     },
     "right": "original"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip",
       "field": "saddr"
      }
     },
     "right": "@p1_src"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip",
       "field": "daddr"
      }
     },
     "right": "@p1_dst"
    }
   },
   {
    "match": {
     "op": "!=",
     "left": {
      "payload": {
       "protocol": "ip",
       "field": "daddr"
      }
     },
     "right": "@p1_exc"
    }
   },
   {
    "mangle": {
     "key": {
      "ct": {
       "key": "mark"
      }
     },
     "value": {
      "|": [
       {
        "&": [
         {
          "ct": {
           "key": "mark"
          }
         },
         4278321151
        ]
       },
       65536
      ]
     }
    }
   }
  ]
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "prerouting",
  "handle": 10,
  "comment": "egress 192.168.1.100",
  "expr": [
   {
    "match": {
     "op": "==",
     "left": {
      "ct": {
       "key": "direction"
      }
     },
     "right": "original"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "&": [
       {
        "ct": {
         "key": "mark"
        }
       },
       16711680
      ]
     },
     "right": 65536
    }
   },
   {
    "mangle": {
     "key": {
      "meta": {
       "key": "mark"
      }
     },
     "value": {
      "|": [
       {
        "&": [
         {
          "meta": {
           "key": "mark"
          }
         },
         4278321151
        ]
       },
       65536
      ]
     }
    }
   }
  ]
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "prerouting",
  "handle": 11,
  "comment": "egress 2001:db8:1::100",
  "expr": [
   {
    "match": {
     "op": "==",
     "left": {
      "ct": {
       "key": "direction"
      }
     },
     "right": "original"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "&": [
       {
        "ct": {
         "key": "mark"
        }
       },
       16711680
      ]
     },
     "right": 131072
    }
   },
   {
    "mangle": {
     "key": {
      "meta": {
       "key": "mark"
      }
     },
     "value": {
      "|": [
       {
        "&": [
         {
          "meta": {
           "key": "mark"
          }
         },
         4278386687
        ]
       },
       131072
      ]
     }
    }
   }
  ]
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "postrouting",
  "handle": 12,
  "comment": "egress 192.168.1.100",
  "expr": [
   {
    "match": {
     "op": "==",
     "left": {
      "&": [
       {
        "meta": {
         "key": "mark"
        }
       },
       16711680
      ]
     },
     "right": 65536
    }
   },
   {
    "snat": {
     "family": "ip",
     "addr": {
      "payload": {
       "protocol": "ip",
       "field": "saddr"
      }
     }
    }
   }
  ]
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "postrouting",
  "handle": 13,
  "comment": "egress 2001:db8:1::100",
  "expr": [
   {
    "match": {
     "op": "==",
     "left": {
      "&": [
       {
        "meta": {
         "key": "mark"
        }
       },
       16711680
      ]
     },
     "right": 131072
    }
   },
   {
    "snat": {
     "family": "ip6",
     "addr": {
      "payload": {
       "protocol": "ip6",
       "field": "saddr"
      }
     }
    }
   }
  ]
 }
}
]''')

GATEWAY_TABLE_JSON = json.loads(r'''[
{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "netkit_egress_nat", "handle": 6}},
{
 "set": {
  "family": "inet",
  "name": "p0_src",
  "table": "netkit_egress_nat",
  "type": "ipv6_addr",
  "handle": 2,
  "flags": [
   "interval"
  ],
  "elem": [
   {
    "prefix": {
     "addr": "2001:db8:10::",
     "len": 64
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p0_dst",
  "table": "netkit_egress_nat",
  "type": "ipv6_addr",
  "handle": 3,
  "flags": [
   "interval"
  ],
  "elem": [
   {
    "prefix": {
     "addr": "::",
     "len": 0
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p1_src",
  "table": "netkit_egress_nat",
  "type": "ipv4_addr",
  "handle": 4,
  "flags": [
   "interval"
  ],
  "elem": [
   "10.10.1.5",
   {
    "prefix": {
     "addr": "10.10.2.0",
     "len": 23
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p1_dst",
  "table": "netkit_egress_nat",
  "type": "ipv4_addr",
  "handle": 5,
  "flags": [
   "interval"
  ],
  "elem": [
   {
    "prefix": {
     "addr": "203.0.113.0",
     "len": 24
    }
   }
  ]
 }
},
{
 "set": {
  "family": "inet",
  "name": "p1_exc",
  "table": "netkit_egress_nat",
  "type": "ipv4_addr",
  "handle": 6,
  "flags": [
   "interval"
  ],
  "elem": [
   "203.0.113.20"
  ]
 }
},
{
 "chain": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "name": "postrouting",
  "handle": 1,
  "type": "nat",
  "hook": "postrouting",
  "prio": 90,
  "policy": "accept"
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "postrouting",
  "handle": 7,
  "comment": "policy v6",
  "expr": [
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip6",
       "field": "saddr"
      }
     },
     "right": "@p0_src"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip6",
       "field": "daddr"
      }
     },
     "right": "@p0_dst"
    }
   },
   {
    "snat": {
     "family": "ip6",
     "addr": "2001:db8:1::100"
    }
   }
  ]
 }
},
{
 "rule": {
  "family": "inet",
  "table": "netkit_egress_nat",
  "chain": "postrouting",
  "handle": 8,
  "comment": "policy web",
  "expr": [
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip",
       "field": "saddr"
      }
     },
     "right": "@p1_src"
    }
   },
   {
    "match": {
     "op": "==",
     "left": {
      "payload": {
       "protocol": "ip",
       "field": "daddr"
      }
     },
     "right": "@p1_dst"
    }
   },
   {
    "match": {
     "op": "!=",
     "left": {
      "payload": {
       "protocol": "ip",
       "field": "daddr"
      }
     },
     "right": "@p1_exc"
    }
   },
   {
    "snat": {
     "family": "ip",
     "addr": "192.168.1.100"
    }
   }
  ]
 }
}
]''')


NUMBERING = model.Numbering()
POLICIES = model.desired_policies("overridden", model.validate_config_entries([
    {"name": "web", "egress_ip": "192.168.1.100",
     "sources": ["10.10.1.5", "10.10.2.0/24", "10.10.3.0/24"], "destinations": ["203.0.113.0/24"],
     "excluded_destinations": ["203.0.113.20"]},
    {"name": "v6", "egress_ip": "2001:db8:1::100", "sources": ["2001:db8:10::/64"],
     "destinations": ["::/0"]}], "overridden"), [])
SLOTS = {"192.168.1.100": 0, "2001:db8:1::100": 1}


def test_render_source_uses_index_set_names_and_owned_mark_bits():
    script = nft.render_script("source", POLICIES, SLOTS, NUMBERING)
    assert script.startswith("table inet netkit_egress_nat {}\ndelete table inet netkit_egress_nat\n")
    assert "set p1_src { type ipv4_addr; flags interval; auto-merge; elements = { 10.10.1.5, 10.10.2.0/23 }; }" \
        in script
    assert "ct mark set ct mark & 0xff00ffff | 0x00010000 comment \"policy web\"" in script
    assert "meta mark & 0x00ff0000 == 0x00020000 snat ip6 to ip6 saddr" in script
    assert "type nat hook postrouting priority srcnat - 10; policy accept;" in script
    # Nothing of ours ends a packet's way through the hooks.
    for word in (" accept comment", " drop", " reject", "return", "jump", "goto"):
        assert word not in script


def test_render_gateway_snat_and_optional_interface():
    script = nft.render_script("gateway", POLICIES, {}, NUMBERING)
    assert "ip saddr @p1_src ip daddr @p1_dst ip daddr != @p1_exc snat ip to 192.168.1.100" in script
    assert "ip6 saddr @p0_src ip6 daddr @p0_dst snat ip6 to 2001:db8:1::100" in script
    assert "prerouting" not in script
    with_interface = [model.Policy(**dict(POLICIES[0].to_dict(), sources=POLICIES[0].sources,
                                          destinations=POLICIES[0].destinations,
                                          excluded_destinations=(), interface="eth1"))]
    assert 'oifname "eth1" snat ip6 to' in nft.render_script("gateway", with_interface, {}, NUMBERING)


def test_render_nothing_removes_the_table():
    assert nft.render_script("source", [], {}, NUMBERING) == \
        "table inet netkit_egress_nat {}\ndelete table inet netkit_egress_nat\n"


@pytest.mark.parametrize("role, objects, slots", [("source", SOURCE_TABLE_JSON, SLOTS),
                                                  ("gateway", GATEWAY_TABLE_JSON, {})])
def test_parse_reads_back_what_was_rendered(role, objects, slots):
    held = nft.parse_table(objects, NUMBERING)
    assert held.exists and held.understood and held.role == role
    assert held.slots == slots
    expected = [nft.strip_interface(policy) for policy in POLICIES]
    assert held.policies == expected
    assert nft.table_matches(held, role, POLICIES, slots)


def test_changes_are_detected():
    held = nft.parse_table(SOURCE_TABLE_JSON, NUMBERING)
    changed = [POLICIES[0], model.Policy(**dict(POLICIES[1].to_dict(), sources=("10.10.1.5",),
                                                destinations=POLICIES[1].destinations,
                                                excluded_destinations=POLICIES[1].excluded_destinations))]
    assert not nft.table_matches(held, "source", changed, SLOTS)
    assert not nft.table_matches(held, "source", POLICIES[:1], {"2001:db8:1::100": 1})
    assert not nft.table_matches(held, "gateway", POLICIES, {})
    assert not nft.table_matches(held, "source", POLICIES, {"192.168.1.100": 1, "2001:db8:1::100": 0})
    assert not nft.table_matches(held, "source", [], {})
    assert nft.table_matches(nft.parse_table(None, NUMBERING), "source", [], {})


def test_a_foreign_rule_in_our_table_is_drift():
    objects = SOURCE_TABLE_JSON + [{"rule": {"family": "inet", "table": "netkit_egress_nat",
                                             "chain": "prerouting", "handle": 99, "expr": [{"accept": None}]}}]
    held = nft.parse_table(objects, NUMBERING)
    assert not held.understood
    assert not nft.table_matches(held, "source", POLICIES, SLOTS)


@pytest.mark.parametrize("elements, expected", [
    (["10.0.0.1"], ("10.0.0.1",)),
    ([{"prefix": {"addr": "10.0.0.0", "len": 23}}], ("10.0.0.0/23",)),
    ([{"range": ["10.0.0.0", "10.0.2.255"]}], ("10.0.0.0/23", "10.0.2.0/24")),
    ([{"elem": {"val": "2001:db8::1", "comment": "x"}}], ("2001:db8::1",)),
])
def test_element_forms(elements, expected):
    assert nft.element_networks(elements) == expected


def test_elements_merge_like_the_set_and_read_ipv6_prefixes():
    elements = [{"prefix": {"addr": "10.0.1.0", "len": 24}}, {"prefix": {"addr": "10.0.0.0", "len": 24}},
                "10.0.2.0", {"prefix": {"addr": "2001:db8::", "len": 32}}]
    assert nft.element_networks(elements) == ("10.0.0.0/23", "10.0.2.0", "2001:db8::/32")


@pytest.mark.parametrize("element", [
    {"prefix": {"addr": "10.0.0.1", "len": 24}},  # host bits: not something nft prints
    {"prefix": {"addr": "10.0.0.0", "len": 33}},
    {"prefix": {"addr": "10.0.0.0", "len": "24"}},
    {"prefix": {"addr": "010.0.0.0", "len": 24}},
    {"range": ["10.0.0.9", "10.0.0.1"]},
    {"range": ["10.0.0.1", "2001:db8::1"]},
    {"concat": ["10.0.0.1", 80]},
])
def test_unexpected_elements_are_refused(element):
    # policy_from_rule turns this into "not understood": the table is rewritten, never misread.
    with pytest.raises(ValueError):
        nft.element_networks([element])
