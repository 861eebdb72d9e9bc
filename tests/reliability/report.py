# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render the figures of the reliability tests (tests/output/reliability.json) as a Markdown table.

    python tests/reliability/report.py                 print the table
    python tests/reliability/report.py --write FILE    replace the table between the markers in FILE

``./run reliability`` runs the reliability tests and then writes the table into docs/reliability.md.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIGURES_PATH = os.path.join(os.path.dirname(HERE), "output", "reliability.json")
BEGIN, END = "<!-- reliability-figures:begin -->", "<!-- reliability-figures:end -->"


def table(rows):
    lines = ["| area | subject | cases tried | passed | host changes where none allowed |",
             "|---|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['area']} | {row['subject']} | {row['tried']} | {row['passed']} | {row['host_changes']} |")
    totals = {key: sum(row[key] for row in rows) for key in ("tried", "passed", "host_changes")}
    lines.append(f"| **all** | | **{totals['tried']}** | **{totals['passed']}** | **{totals['host_changes']}** |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="FILE")
    args = parser.parse_args(argv)
    with open(FIGURES_PATH) as handle:
        rows = json.load(handle)["rows"]
    text = table(rows)
    if not args.write:
        sys.stdout.write(text)
        return 0
    with open(args.write) as handle:
        document = handle.read()
    start, end = document.index(BEGIN) + len(BEGIN), document.index(END)
    with open(args.write, "w") as handle:
        handle.write(document[:start] + "\n" + text + document[end:])
    failed = [row for row in rows if row["passed"] != row["tried"] or row["host_changes"]]
    print(f"{args.write}: {len(rows)} rows, {sum(row['tried'] for row in rows)} cases, "
          f"{len(failed)} row(s) with failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
