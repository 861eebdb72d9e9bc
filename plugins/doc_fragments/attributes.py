# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Attributes shared by the collection's filter plugins (netkit.egress.attributes.filter)."""

    # The filters are pure functions of their arguments, evaluated by the controller's templating.
    FILTER = r"""
attributes:
  check_mode:
    support: full
    description:
      - A pure function evaluated on the controller; it changes nothing, so it returns the same result in
        check mode as in a real run.
  diff_mode:
    support: N/A
    description:
      - Returns data, has no state of its own to diff.
  platform:
    support: full
    platforms: all
    description:
      - Runs on the controller with Python's standard library only; the managed hosts' platform does not
        matter.
"""
