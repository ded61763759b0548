"""A core of its own for each server worker: how the bench's `scaleout` scenario compares
`--workers 1` with `--workers 2` on whatever machine it has.

- **Real cores**, where the process may run on one CPU per worker and one more for the client: each
  worker is pinned to a CPU of its own, the client to the last allowed CPU.
- **Equal shares of one core**, where there are fewer (this project's 2-core machines): every worker
  is pinned to the first CPU in a control group of its own, whose CPU bandwidth (the kernel's CFS
  quota) is one core divided by the most workers compared; the client has the second CPU to itself.
  Each worker runs on the same share whatever the number of workers, so what `--workers 2` adds is a
  second share, as a second core would. Needs the cgroup v1 `cpu` controller mounted writable (root).
  An emulation, biased against two workers: two workers on one CPU take turns on it, so one's tick
  can wait for the other's, which one worker alone never does; and a kernel without a
  high-resolution tick enforces the quota only at its tick (4 ms at HZ=250), so a worker may overrun
  its share and then wait that long (docs/performance.md, tenth round).
- Neither: the scenario is not measured, and the reason is printed and recorded.

The kernel's work for the server's sockets that runs in the sender's system call (on loopback, most
of the client's receive path) is charged to the worker, as it would load the worker's core; work the
kernel defers to its own threads is charged to neither side.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CPU_CGROUP", "Placement", "allowed_cpus", "busiest_worker_share", "on_own_cores", "place_workers",
    "placement_for", "readiness_of_each_worker", "remove_stale_groups", "worker_pids",
]  # fmt: skip

CPU_CGROUP = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, where it is mounted
QUOTA_US = 1_000  # the kernel's least quota; the period is as long as the share asks (2 ms for half)
WORKERS_READY_S = 30.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the workers of a server (``worker_cpus``, one each, or one they share) and its client run."""

    kind: str  # "cores" or "shares"
    worker_cpus: tuple[int, ...]
    client_cpu: int
    share: float  # of a core, per worker (1.0 on real cores)

    def worker_cpu(self, index: int) -> int:
        return self.worker_cpus[index % len(self.worker_cpus)]

    def describe(self) -> str:
        if self.kind == "cores":
            return f"each worker on a core of its own, the client on CPU {self.client_cpu}"
        return (
            f"each worker on {self.share:.2g} of CPU {self.worker_cpus[0]} (a CFS quota of its own), the "
            f"client on CPU {self.client_cpu}: the machine has too few cores for one per worker and one "
            "for the client"
        )


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order: a container or ``taskset`` may allow fewer, or
    other, CPUs than ``os.cpu_count()`` counts, and pinning to one outside them fails."""
    return sorted(os.sched_getaffinity(0))


def placement_for(most_workers: int, cgroup_root: Path = CPU_CGROUP) -> Placement | str:
    """How to give each of up to ``most_workers`` workers a core of its own here, or why it cannot be
    done on this machine (on the CPUs it may use)."""
    allowed = allowed_cpus()
    if len(allowed) >= most_workers + 1:
        return Placement("cores", tuple(allowed[:most_workers]), client_cpu=allowed[-1], share=1.0)
    if len(allowed) < 2:
        return "one CPU: the server and the client cannot be separated"
    cores = f"{len(allowed)} cores for {most_workers} workers and the client"
    if not (cgroup_root / "cpu.cfs_quota_us").exists():
        return f"{cores}, and no cgroup v1 cpu controller at {cgroup_root} to share one among workers"
    if not os.access(cgroup_root, os.W_OK):
        return f"{cores}, and {cgroup_root} is not writable (shares of a core need root)"
    return Placement("shares", (allowed[0],), client_cpu=allowed[1], share=1 / most_workers)


def readiness_of_each_worker(port: int, workers: int, *, timeout: float = WORKERS_READY_S) -> dict[int, Any]:
    """What each of the server's ``workers`` workers answers on /readyz (its process id, its open
    streams), asked on new connections until every one of them has answered or ``timeout`` seconds
    have passed: each connection goes to whichever worker accepts it from the shared socket first."""
    answers: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < workers and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as got:
                answer = json.load(got)
                answers[int(answer["worker"])] = answer
        except OSError:  # refused, or 503: not yet, or no longer
            time.sleep(0.1)
    return answers


def worker_pids(port: int, workers: int) -> list[int]:
    """The process ids of the server's workers, once every one of them answers: a worker still
    starting would take its part of the load late."""
    answers = readiness_of_each_worker(port, workers)
    if len(answers) < workers:
        late = f"only {len(answers)} of {workers} workers answered /readyz within {WORKERS_READY_S:.0f} s"
        raise SystemExit(late)
    return sorted(answers)


def busiest_worker_share(port: int, workers: int) -> float:
    """The part of the server's open streams that its busiest worker holds (NaN if some worker did not
    answer within 5 s): the busiest worker reaches its core's limit first."""
    answers = readiness_of_each_worker(port, workers, timeout=5.0)
    counts = [answer["open_streams"] for answer in answers.values()]
    return max(counts) / sum(counts) if len(counts) == workers and sum(counts) else float("nan")


@contextmanager
def place_workers(pids: list[int], placement: Placement, cgroup_root: Path = CPU_CGROUP) -> Iterator[None]:
    """Each worker of ``pids`` pinned to its CPU and, for shares, in a control group of its own with its
    quota; the groups are removed on the way out (the processes left in them moved back first)."""
    groups: list[Path] = []
    remove_stale_groups(cgroup_root)
    try:
        for index, pid in enumerate(pids):
            cpu = placement.worker_cpu(index)
            for thread in Path(f"/proc/{pid}/task").iterdir():  # a thread's affinity is its own
                with suppress(ProcessLookupError):  # a thread that ended meanwhile
                    os.sched_setaffinity(int(thread.name), {cpu})
            if placement.kind == "shares":
                group = cgroup_root / f"llmstream-bench-{os.getpid()}-{index}"
                group.mkdir()
                groups.append(group)
                (group / "cpu.cfs_period_us").write_text(str(round(QUOTA_US / placement.share)))
                (group / "cpu.cfs_quota_us").write_text(str(QUOTA_US))
                (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        for group in groups:
            for left in (group / "cgroup.procs").read_text().split():
                with suppress(OSError):  # it may have exited meanwhile
                    (cgroup_root / "cgroup.procs").write_text(left)
            with suppress(OSError):  # not empty after all: the next bench removes it (remove_stale_groups)
                group.rmdir()


def remove_stale_groups(cgroup_root: Path = CPU_CGROUP) -> None:
    """The empty groups of a bench that was killed before it could remove them (its process gone)."""
    for group in cgroup_root.glob("llmstream-bench-*-*"):
        owner = int(group.name.split("-")[2])
        if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            with suppress(OSError):  # not empty: a process of it still runs
                group.rmdir()


@contextmanager
def on_own_cores(port: int, workers: int, placement: Placement | None) -> Iterator[None]:
    """The server on ``port``, with ``workers`` workers, placed as ``placement`` says (as it was started
    when None)."""
    if placement is None:
        yield
        return
    with place_workers(worker_pids(port, workers), placement):
        yield
