"""CPU and memory of the peer's processes: the qcluster tree and its PostgreSQL backends."""

from __future__ import annotations

from collections.abc import Callable

import psutil

MB = 1024 * 1024


class TreeMeter:
    """CPU seconds and peak RSS of a process and all its descendants, including exited ones.

    django-q2 recycles a worker every 500 tasks; an exited worker's CPU moves into its
    parent's children_user/children_system once reaped, so summing those with the live
    processes' own times counts every worker that ever ran, each once.
    """

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._start = self._cpu()
        self.peak_rss = 0

    def _processes(self) -> list[psutil.Process]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu(self) -> float:
        total = 0.0
        for process in self._processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def sample(self) -> None:
        """Record the tree's current total RSS if it is the highest seen."""
        rss = 0
        for process in self._processes():
            try:
                rss += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        self.peak_rss = max(self.peak_rss, rss)

    def result(self) -> dict[str, float]:
        """Return CPU seconds since this meter started and the peak total RSS in MB."""
        return {
            "cpu_seconds": round(self._cpu() - self._start, 3),
            "peak_rss_mb": round(self.peak_rss / MB, 1),
        }


class BackendMeter:
    """CPU seconds and peak RSS of the PostgreSQL backends serving one database.

    `list_pids` returns the backends' pids (from pg_stat_activity). Backends that started
    after this meter count from their birth; one that exits between samples loses at most one
    sampling interval of CPU. RSS includes the shared buffers a backend touched, so the
    private figure (RSS minus shared pages) is kept too.
    """

    def __init__(self, list_pids: Callable[[], list[int]]) -> None:
        self._list_pids = list_pids
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self.peak_rss = 0
        self.peak_private_rss = 0
        self._read(first=True)

    def _read(self, *, first: bool = False) -> None:
        rss = private = 0
        for pid in self._list_pids():
            try:
                process = psutil.Process(pid)
                times = process.cpu_times()
                memory = process.memory_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            cpu = times.user + times.system
            self._first.setdefault(pid, cpu if first else 0.0)
            self._last[pid] = cpu
            rss += memory.rss
            private += memory.rss - memory.shared
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_private_rss = max(self.peak_private_rss, private)

    def sample(self) -> None:
        """Read every current backend's CPU and the total RSS."""
        self._read()

    def result(self) -> dict[str, float]:
        """Return CPU seconds since this meter started and the peak total RSS in MB."""
        cpu = sum(last - self._first[pid] for pid, last in self._last.items())
        return {
            "cpu_seconds": round(cpu, 3),
            "peak_rss_mb": round(self.peak_rss / MB, 1),
            "peak_private_rss_mb": round(self.peak_private_rss / MB, 1),
        }


class SelfMeter:
    """CPU seconds and peak RSS of the current process."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._start = self._cpu()
        self.peak_rss = 0

    def _cpu(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def sample(self) -> None:
        """Record the current RSS if it is the highest seen."""
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)

    def result(self) -> dict[str, float]:
        """Return CPU seconds since this meter started and the peak RSS in MB."""
        self.sample()
        return {
            "cpu_seconds": round(self._cpu() - self._start, 3),
            "peak_rss_mb": round(self.peak_rss / MB, 1),
        }


def combine(*results: dict[str, float]) -> dict[str, float]:
    """Add CPU seconds and take the highest peaks of several phases' results."""
    combined: dict[str, float] = {}
    for result in results:
        for key, value in result.items():
            if key == "cpu_seconds":
                combined[key] = round(combined.get(key, 0.0) + value, 3)
            else:
                combined[key] = max(combined.get(key, 0.0), value)
    return combined
