# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``_nat_policy_run`` still imports from here; the scripts live in ``_nft_table`` (delete this file
once nat_policy imports ``_nft_table.restore_script`` itself)."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils._nft_table import restore_script as nft_table_restore

__all__ = ["nft_table_restore"]
