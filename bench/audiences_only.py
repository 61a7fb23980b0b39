"""`python -m bench.audiences_only`: only the broadcast and schedule phases (bench.audiences), on a
fresh stack against DATABASE_URL (dropped and created afresh, as `python -m bench`).

Quicker than a full `make bench` when working on fan-out or scheduling; nothing is written to
bench/results/ (`--json PATH` writes the results where asked).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from bench.stack import ROOT


def main(argv: list[str] | None = None) -> int:
    """Run only the broadcast and schedule phases on a fresh stack."""
    parser = argparse.ArgumentParser(prog="python -m bench.audiences_only", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--load-rate", type=float, default=500.0)
    parser.add_argument("--window", type=float, help="seconds the scheduled sends span")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--only", choices=["broadcast", "scheduled"], default="")
    args = parser.parse_args(argv)
    from bench.__main__ import DEFAULT_DATABASE, _setup

    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    _setup(url)
    from bench import audiences, harness

    scale = harness.Scale()
    scale = dataclasses.replace(
        scale,
        broadcast_users=max(1, int(scale.broadcast_users * args.scale)),
        scheduled_sends=max(1, int(scale.scheduled_sends * args.scale)),
        scheduled_window=args.window or scale.scheduled_window,
    )
    workdir = ROOT / "artifacts" / "bench" / time.strftime("%Y%m%d-%H%M%S-audiences")
    harness.prepare_database(url)
    stack, ctx = harness._start(scale, url, workdir)
    try:
        results = audiences.run(ctx, scale, load_rate=args.load_rate, only=args.only)
    finally:
        ctx.sampler.stop()
        stack.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(phase["ok"] for phase in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
