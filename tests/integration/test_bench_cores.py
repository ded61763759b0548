"""The bench's scale-out placement (loadtests/cores.py) on real processes and the kernel's real control
groups: which placement a machine gets, every worker of a real `--workers 2` server found, and each
worker pinned and held to its share, with nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import cpus
from cores import CPU_CGROUP, Placement, place_workers, placement_for, remove_stale_groups, worker_pids
from run import cpu_split

from tests.integration.serverproc import free_port, running_server

SHARES = Placement("shares", (0,), client_cpu=1, share=0.5)
# Control groups are the kernel's and need root: where the bench cannot use them, it says so instead.
needs_cgroups = pytest.mark.skipif(
    not (CPU_CGROUP / "cpu.cfs_quota_us").exists() or not os.access(CPU_CGROUP, os.W_OK),
    reason=f"needs a writable cgroup v1 cpu controller at {CPU_CGROUP} (root)",
)


def cgroup_of(pid: int) -> str:
    """The process's group in the cgroup v1 cpu hierarchy ("/" for the root)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    raise AssertionError(f"no cpu controller in /proc/{pid}/cgroup")


@pytest.fixture
def sleepers() -> Iterator[list[int]]:
    """Two real processes, each with a second thread (a thread's CPU affinity is its own)."""
    code = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); time.sleep(60)"
    processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    try:
        deadline = time.monotonic() + 10
        for process in processes:  # until its second thread exists
            while len(os.listdir(f"/proc/{process.pid}/task")) < 2:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.01)
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_a_machine_with_a_core_per_worker_and_one_more_gets_real_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    placement = placement_for(2)
    assert placement == Placement("cores", (0, 1), client_cpu=3, share=1.0)
    assert [placement.worker_cpu(i) for i in (0, 1)] == [0, 1]


def test_the_bench_and_the_load_test_pin_only_to_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # They assumed CPUs 0 and 1 from os.cpu_count(): in a container allowed CPUs 5 and 7, or under
    # `taskset`, taskset was asked for CPUs the process may not use, and refused.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {7, 5})
    assert cpus() == ("5", "7")
    assert cpu_split(True) == ("5", "7")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 2, 3})
    assert cpus() == ("2", "3")
    assert cpu_split(True) == ("2", "3,4")
    assert cpu_split(False) == (None, None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert cpus() == (None, None)
    assert cpu_split(True) == (None, None)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to leave one out")
def test_under_taskset_on_one_cpu_the_bench_pins_nothing_and_its_commands_still_run() -> None:
    # The real kernel's affinity, not a patched one: a process taskset keeps to its last CPU.
    last = max(os.sched_getaffinity(0))
    script = (
        "import subprocess; from bench import cpus; from run import cpu_split, pinned; "
        "print(cpus(), cpu_split(True)); subprocess.run(pinned(['true'], cpus()[0]), check=True)"
    )
    done = subprocess.run(
        ["taskset", "-c", str(last), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2] / "loadtests",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(None, None) (None, None)"


def test_a_two_core_machine_shares_cpu_0_or_says_why_it_cannot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert placement_for(2, cgroup_root=tmp_path) == (
        f"2 cores for 2 workers and the client, and no cgroup v1 cpu controller at {tmp_path} to share "
        "one among workers"
    )
    (tmp_path / "cpu.cfs_quota_us").write_text("-1")
    assert placement_for(2, cgroup_root=tmp_path) == SHARES
    assert [SHARES.worker_cpu(i) for i in (0, 1)] == [0, 0]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 7})  # a container's CPUs
    assert placement_for(2, cgroup_root=tmp_path) == Placement("shares", (5,), client_cpu=7, share=0.5)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert placement_for(2, cgroup_root=tmp_path) == "one CPU: the server and the client cannot be separated"


@needs_cgroups
def test_each_worker_is_pinned_and_held_to_its_share_in_a_group_that_goes_afterwards(
    sleepers: list[int],
) -> None:
    before = [cgroup_of(pid) for pid in sleepers]
    with place_workers(sleepers, SHARES):
        groups = [cgroup_of(pid) for pid in sleepers]
        assert len(set(groups)) == 2
        assert all(group.startswith("/llmstream-bench-") for group in groups)
        for pid, group in zip(sleepers, groups, strict=True):
            folder = CPU_CGROUP / group.lstrip("/")
            assert (folder / "cpu.cfs_period_us").read_text().strip() == "2000"
            assert (folder / "cpu.cfs_quota_us").read_text().strip() == "1000"  # half of each period
            for thread in os.listdir(f"/proc/{pid}/task"):
                assert os.sched_getaffinity(int(thread)) == {0}
    assert [cgroup_of(pid) for pid in sleepers] == before
    assert not [folder for folder in (CPU_CGROUP / group.lstrip("/") for group in groups) if folder.exists()]


def test_every_worker_of_a_two_worker_server_is_found_by_what_it_answers(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "llmstream", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2"]  # fmt: skip
    with running_server(command, port, log_path=tmp_path / "server.log") as server:
        pids = worker_pids(port, 2)
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
        assert len(pids) == 2, server.log()
        assert {str(pid) for pid in pids} <= set(children), server.log()


@needs_cgroups
def test_the_groups_a_killed_bench_left_are_removed_and_no_others() -> None:
    code = "import os; print(os.getpid())"
    gone = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    left = CPU_CGROUP / f"llmstream-bench-{int(gone.stdout)}-0"  # its owner has exited
    ours = CPU_CGROUP / f"llmstream-bench-{os.getpid()}-0"
    left.mkdir()
    ours.mkdir()
    try:
        remove_stale_groups()
        assert not left.exists()
        assert ours.exists()
    finally:
        for group in (left, ours):
            if group.exists():
                group.rmdir()
