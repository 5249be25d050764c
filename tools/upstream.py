"""The upstream copy the tests and the program read in place (modules/shared/upstream.py): check it.

    python -m tools.upstream check    every pin has its chart and CRDs in the copy, at the pinned version
"""

from __future__ import annotations

import argparse
import sys

from modules.shared.upstream import check, reason, root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.upstream", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="every pin has its chart and CRDs in the upstream copy")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        if root() is None:
            print(reason(), file=sys.stderr)
            return 2
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print(f"every pin is in the upstream copy at {root()}")
        return 1 if problems else 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
