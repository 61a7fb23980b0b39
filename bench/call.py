"""`python -m bench.call MODULE`: run MODULE.run(spec) in a fresh process (spec on stdin).

The peer and the floor sender configure their own Django settings and processes; running each
in its own interpreter keeps them apart from the harness's Keymaster settings. The result is
printed as the last line of stdout, as JSON.
"""

from __future__ import annotations

import importlib
import json
import sys


def main() -> None:
    """Read the spec, call the module's `run`, print its result as one JSON line."""
    spec = json.load(sys.stdin)
    result = importlib.import_module(sys.argv[1]).run(spec)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
