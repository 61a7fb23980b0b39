"""Fail when a lock (requirements*.txt) is out of date with its .in file.

pip-compile marks each pin a .in file asks for with `# via -r <file>.in` (or `via -r` on the
same line). The lock is current when those pins are exactly the .in file's requirements, each
pinned to a version its specifier allows, and every pin carries a hash. Offline and instant:
no index is read. Recompile with the command in each .in file's header (README "Operations").
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"requirements.in": "requirements.txt", "requirements-dev.in": "requirements-dev.txt"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def wanted(path: Path) -> dict[str, Requirement]:
    """The requirements a .in file names (options such as -c skipped)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def pinned(path: Path, source: str) -> tuple[dict[str, str], set[str], list[str]]:
    """The lock's pins, those it says `source` asked for, and the pins without a hash."""
    pins: dict[str, str] = {}
    direct: set[str] = set()
    unhashed: list[str] = []
    current = None
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = match.group(2)
            if "--hash=" not in line and not line.rstrip().endswith("\\"):
                unhashed.append(current)
        elif current and re.search(rf"(via|#)\s+-r {re.escape(source)}\b", line):
            direct.add(current)
    return pins, direct, unhashed


def problems() -> list[str]:
    found = []
    for source, lock in LOCKS.items():
        wants = wanted(ROOT / source)
        pins, direct, unhashed = pinned(ROOT / lock, source)
        for name, requirement in wants.items():
            if name not in pins:
                found.append(f"{lock}: {requirement} from {source} is not pinned")
            elif not requirement.specifier.contains(pins[name], prereleases=True):
                found.append(f"{lock}: {name}=={pins[name]} does not satisfy {requirement}")
        for name in sorted(direct - set(wants)):
            found.append(f"{lock}: {name} was asked for by {source}, which no longer names it")
        found += [f"{lock}: {name} has no hash" for name in unhashed]
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        print("A lock is out of date: recompile it (README, Operations).", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
