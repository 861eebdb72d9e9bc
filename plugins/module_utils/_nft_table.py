# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-table nft scripts shared by every module that owns an nftables table (pure).

Each module owns exactly one table and replaces it in one ``nft -f`` transaction; these scripts delete it
(whether or not it exists) and put it back as it was read before a run (the undo of a later failure).
"""

from __future__ import annotations


def delete_script(family, name):
    """Removes table ``family name`` if it exists (declaring it first makes the delete never fail)."""
    return f"table {family} {name} {{}}\ndelete table {family} {name}\n"


def restore_script(family, name, listing):
    """One transaction that puts the table back as ``listing`` (``nft list table`` text), or removes it
    when it did not exist (``listing`` None)."""
    script = delete_script(family, name)
    return script + listing if listing else script


def snapshot(family, name):
    """A ``Transaction.snapshot``: reads the table just before the apply and returns its restore script."""
    def read(host):
        return restore_script(family, name, host.nft_table_text(family, name))
    return read
