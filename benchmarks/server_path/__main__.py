"""``python -m benchmarks.server_path [--quick] [--json FILE]``: run, print the markdown report."""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.server_path.run import markdown, run_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_path", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="32 chats x 50 tokens (a correctness run)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    args = parser.parse_args(argv)
    results = run_benchmark(quick=args.quick, progress=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    print(markdown(results))
    ok = all(p["ok"] for v in results["variants"].values() for p in v.get("phases", {}).values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
