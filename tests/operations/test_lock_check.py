"""The lock check CI runs: current locks pass; a .in changed without recompiling fails."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lock_check(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("lock_check", ROOT / ".ci" / "lock_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in (
        "requirements.in",
        "requirements.txt",
        "requirements-dev.in",
        "requirements-dev.txt",
    ):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def test_the_committed_locks_are_current(lock_check):
    assert lock_check.problems() == []


def test_a_package_added_to_an_in_file_fails(lock_check):
    with open(lock_check.ROOT / "requirements.in", "a") as handle:
        handle.write("django-extensions==4.1\n")
    assert lock_check.problems() == [
        "requirements.txt: django-extensions==4.1 from requirements.in is not pinned"
    ]


def test_a_pin_moved_in_an_in_file_fails(lock_check):
    path = lock_check.ROOT / "requirements.in"
    path.write_text(path.read_text().replace("gunicorn==27.0.1", "gunicorn==26.0.0"))
    assert lock_check.problems() == [
        "requirements.txt: gunicorn==27.0.1 does not satisfy gunicorn==26.0.0"
    ]


def test_a_package_dropped_from_an_in_file_fails(lock_check):
    path = lock_check.ROOT / "requirements-dev.in"
    path.write_text(path.read_text().replace("py-spy==0.4.3\n", ""))
    [problem] = lock_check.problems()
    assert problem.startswith("requirements-dev.txt: py-spy was asked for by requirements-dev.in")
