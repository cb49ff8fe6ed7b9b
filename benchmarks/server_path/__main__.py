"""``python -m benchmarks.server_path [--quick] [--json FILE]``: run, print the markdown report."""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks.server_path.run import markdown, run_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_path", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="32 chats x 50 tokens (a correctness run)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="run Redis, the servers and the load process N steps above normal priority (root): "
        "other work on a shared machine then disturbs the wall-clock figures less",
    )
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(-args.nice)  # inherited by every process the run starts
    results = run_benchmark(quick=args.quick, progress=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    print(markdown(results))
    ok = all(p["ok"] for v in results["variants"].values() for p in v.get("phases", {}).values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
