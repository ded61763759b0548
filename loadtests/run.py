"""One load-test run, start to finish: `make loadtest` runs this.

Starts llmstream on 127.0.0.1 (unless --target names another server), runs Locust headless for a
bounded time (locally, with --processes, or as a master with separate worker processes), and leaves in
``results/<run>/``: run.json (the parameters), Locust's CSV files and HTML report, the raw per-token
timelines of every worker, the server's log, and summary.json with the figures and the validity verdict.

Exit status: 0 when every stream passed its integrity check and the run is valid; 1 when a stream
failed; 3 when the client lagged (client-lag p99 above the limit: the figures measured the client);
2 for bad arguments or a run that did not happen.

This process never imports Locust (gevent's monkey-patching stays inside Locust's own processes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cores import allowed_cpus  # noqa: E402
from streamload.kinds import KINDS, parse_mix  # noqa: E402
from streamload.shapes import SHAPES  # noqa: E402
from streamload.summary import summarize  # noqa: E402

API_MIXES = {
    "native": "native=1",
    "openai": "openai=1",
    "anthropic": "anthropic=1",
    "mixed": "native=3,openai=3,anthropic=3,resumer=1,aborter=1,slow=1",
}
EXIT_FAILURES, EXIT_USAGE, EXIT_INVALID = 1, 2, 3
LOCUST_TIMED_OUT = -1  # run_locust's answer when Locust overran its time budget


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    load = parser.add_argument_group("load")
    load.add_argument("--users", type=int, default=100, help="concurrent streams (closed loop) [100]")
    load.add_argument("--spawn-rate", type=float, default=None, help="users started per second [users/2]")
    load.add_argument("--duration", type=float, default=30, help="seconds of load [30]")
    load.add_argument("--shape", choices=SHAPES, default="steady", help="load over time [steady]")
    load.add_argument(
        "--rate", type=float, default=0, help="open loop: new streams per second (0: closed loop)"
    )
    load.add_argument("--api", choices=sorted(API_MIXES), default="mixed", help="which APIs' users [mixed]")
    load.add_argument("--mix", default=None, help=f"weights per kind, overrides --api ({', '.join(KINDS)})")
    load.add_argument("--model", default="fast", help="model each stream asks for [fast]")
    load.add_argument("--max-tokens", type=int, default=64, help="max_tokens per stream [64]")
    load.add_argument("--tokens-per-s", type=float, default=None, help="llmstream: token rate per stream")
    load.add_argument("--ttft-ms", type=float, default=None, help="llmstream: time to first token")
    where = parser.add_argument_group("where")
    where.add_argument("--target", default=None, help="URL of a running server (default: start llmstream)")
    where.add_argument(
        "--target-kind", choices=("llmstream", "other"), default=None,
        help="'other': not llmstream (no extensions; openai and anthropic kinds only) [llmstream, or "
        "other when --target is given]",
    )  # fmt: skip
    where.add_argument("--header", action="append", default=[], help="extra request header 'Name: value'")
    where.add_argument("--server-args", default="", help="extra `llmstream serve` flags, e.g. '--workers 2'")
    locust = parser.add_argument_group("locust")
    locust.add_argument(
        "--processes", type=int, default=0, help="Locust --processes: forked workers [0: none]"
    )
    locust.add_argument("--workers", type=int, default=0, help="a master and this many worker processes")
    locust.add_argument("--stop-timeout", type=float, default=30, help="seconds streams may finish after")
    locust.add_argument(
        "--pin", action="store_true",
        help="server on the first CPU allowed, Locust on the rest (taskset): neither steals the other's core",
    )  # fmt: skip
    locust.add_argument("--max-client-lag-ms", type=float, default=10.0, help="client-lag p99 of a valid run")
    out = parser.add_argument_group("results")
    out.add_argument("--results", type=Path, default=Path("results"), help="parent folder [results]")
    out.add_argument("--run", default=None, help="run name [date-time-api-users]")
    out.add_argument(
        "--summarize", type=Path, default=None, metavar="FOLDER",
        help="run nothing: summarize a results folder whose timelines/ were gathered by hand (several "
        "machines' workers)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.processes and args.workers:
        parser.error("give --processes or --workers, not both")
    args.mix = args.mix or API_MIXES[args.api]
    try:
        parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    if args.target_kind is None:
        args.target_kind = "other" if args.target else "llmstream"
    if args.spawn_rate is None:
        args.spawn_rate = max(1.0, args.users / 2)
    if args.run is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        load_name = f"{args.rate:g}per-s" if args.rate else f"{args.users}u"
        args.run = f"{stamp}-{args.api if args.mix == API_MIXES[args.api] else 'mix'}-{load_name}"
    return args


def pinned(command: list[str], cpus: str | None) -> list[str]:
    """``command`` run on ``cpus`` (taskset's list syntax), or as it is when not pinning."""
    return ["taskset", "-c", cpus, *command] if cpus else command


def cpu_split(pin: bool) -> tuple[str | None, str | None]:
    """(server CPUs, Locust CPUs) for --pin: the first CPU this process may use, and the rest of them;
    nothing to pin on one CPU."""
    allowed = allowed_cpus()
    if not pin or len(allowed) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(allowed[0]), ",".join(str(cpu) for cpu in allowed[1:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def llmstream_server(folder: Path, server_args: str, cpus: str | None) -> Iterator[str]:
    """llmstream on a free port of 127.0.0.1 for the run, its log in the results folder."""
    port = free_port()
    command = [sys.executable, "-m", "llmstream", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command = pinned(command + server_args.split(), cpus)
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            if not answers(f"{url}/healthz", process):
                raise SystemExit(f"the server did not start; see {folder / 'server.log'}")
            yield url
        finally:
            _stop(process, signal.SIGTERM, timeout=30)  # its own graceful shutdown, within --grace


def answers(url: str, process: subprocess.Popen[bytes], *, timeout: float = 30) -> bool:
    """Whether ``url`` answers before ``process`` exits or ``timeout`` seconds pass (polled)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def locust_command(args: argparse.Namespace, target: str, folder: Path) -> list[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
        "--host", target, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{args.duration:g}s", "--stop-timeout", f"{args.stop_timeout:g}",
        "--csv", str(folder / "locust"), "--csv-full-history", "--html", str(folder / "report.html"),
        "--only-summary", "--loglevel", "INFO",
        "--llm-mix", args.mix, "--llm-model", args.model, "--llm-max-tokens", str(args.max_tokens),
        "--llm-shape", args.shape, "--llm-arrival-rate", f"{args.rate:g}",
        "--llm-results", str(folder), "--llm-target", args.target_kind,
        "--llm-max-client-lag-ms", f"{args.max_client_lag_ms:g}",
    ]  # fmt: skip
    if args.tokens_per_s is not None:
        command += ["--llm-tokens-per-s", f"{args.tokens_per_s:g}"]
    if args.ttft_ms is not None:
        command += ["--llm-ttft-ms", f"{args.ttft_ms:g}"]
    for header in args.header:
        command += ["--llm-header", header]
    if args.processes:
        command += ["--processes", str(args.processes)]
    return command


def run_locust(args: argparse.Namespace, target: str, folder: Path, cpus: str | None) -> int:
    """Locust's exit status; every process bounded by the run time plus a margin."""
    command = pinned(locust_command(args, target, folder), cpus)
    budget = args.duration + args.stop_timeout + 60
    with ExitStack() as stack, (folder / "locust.log").open("wb") as log:
        workers: list[subprocess.Popen[bytes]] = []
        if args.workers:
            port = free_port()
            command += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
            command += ["--expect-workers", str(args.workers), "--expect-workers-max-wait", "60"]
            worker = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--worker"]
            worker = pinned([*worker, "--master-host", "127.0.0.1", "--master-port", str(port)], cpus)
            for _ in range(args.workers):
                process = subprocess.Popen(worker, stdout=log, stderr=subprocess.STDOUT)
                workers.append(process)
                stack.callback(_stop, process)
        # Its own process group: --processes forks workers that can outlive the master by a moment,
        # and the server must not stop under their last streams.
        master = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(_stop_group, master, args.stop_timeout)
        try:
            code = master.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            print(f"Locust did not finish within {budget:.0f} s; stopped.", file=sys.stderr)
            return LOCUST_TIMED_OUT
        _wait_for_group(master.pid, timeout=args.stop_timeout + 30)
        # The master has its workers' last figures once it exits; a worker that missed its quit message
        # (it can, as the master exits) is told again, by SIGINT, when the stack unwinds.
        for process in workers:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        return code


def _stop_group(master: subprocess.Popen[bytes], stop_timeout: float) -> None:
    """The master and every worker it forked: SIGINT, then SIGKILL for what is left after a while."""
    with suppress(ProcessLookupError):
        os.killpg(master.pid, signal.SIGINT)
    _wait_for_group(master.pid, timeout=min(stop_timeout, 15))
    master.wait()


def _wait_for_group(pgid: int, *, timeout: float) -> None:
    """Until no process of the group is left (killed after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT, *, timeout: float = 15) -> None:
    """``sig``, then SIGKILL if the process is still there after ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def describe_run(args: argparse.Namespace, target: str) -> dict[str, Any]:
    return {
        "run": args.run,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "target": target,
        "target_kind": args.target_kind,
        "mix": {kind: weight for kind, weight in parse_mix(args.mix).items() if weight},
        "shape": args.shape,
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "arrival_rate": args.rate or None,
        "workers": args.workers or args.processes or 1,
        "distribution": "master+workers" if args.workers else "processes" if args.processes else "local",
        "pinned": args.pin,
        "model": args.model,
        "max_tokens": args.max_tokens,
        "max_client_lag_ms": args.max_client_lag_ms,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }


def report(summary: dict[str, Any], folder: Path) -> None:
    def ms(figures: dict[str, float | None] | None, key: str) -> str:
        value = (figures or {}).get(key)
        return "-" if value is None else f"{value:.1f}"

    rate = summary["events_per_s"]
    print(f"\nresults: {folder}")
    print(f"streams {summary['streams']}  outcomes {summary['outcomes']}  tokens {summary['tokens']}")
    print(f"token events/s {rate:,.0f}" if rate else "token events/s -")
    for name in ("ttft_ms", "itl_ms", "e2e_ms", "client_lag_ms"):
        figures = summary[name]
        cells = "  ".join(f"{key} {ms(figures, key):>8}" for key in ("p50", "p99", "max"))
        print(f"  {name:<14} {cells}")
    for error, count in summary["errors"].items():
        print(f"  FAILED x{count}: {error}")
    if summary["valid"] is None:
        print("client lag not measured (the server sent no send timestamps): validity unknown")
    elif not summary["valid"]:
        banner = "#" * 78
        p99, limit = summary["client_lag_ms"]["p99"], summary["max_client_lag_ms"]
        print(f"\n{banner}\nINVALID RUN: client-lag p99 {p99:.1f} ms > {limit:g} ms. The load generator")
        print("could not keep up, so these figures measure it, not the server. Use more Locust processes")
        print(
            f"(--processes / --workers), fewer users or a lower rate; or the server was saturated.\n{banner}"
        )
    else:
        p99, limit = summary["client_lag_ms"]["p99"], summary["max_client_lag_ms"]
        print(f"valid: client-lag p99 {p99:.2f} ms <= {limit:g} ms")


def conclude(folder: Path, max_client_lag_ms: float, locust_code: int | None) -> int:
    """Write summary.json, print the figures and the verdict; the exit status they call for."""
    try:
        summary = summarize(folder, max_client_lag_ms=max_client_lag_ms)
    except FileNotFoundError as exc:
        print(f"{exc}; see {folder / 'locust.log'}", file=sys.stderr)
        return EXIT_USAGE
    summary["locust_exit_code"] = locust_code
    if locust_code == LOCUST_TIMED_OUT:
        print("the run overran its time budget: no verdict", file=sys.stderr)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return EXIT_USAGE
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report(summary, folder)
    if summary["failures"] or locust_code not in (None, 0, EXIT_INVALID):
        return EXIT_FAILURES
    return EXIT_INVALID if summary["valid"] is False else 0


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.summarize is not None:
        return conclude(args.summarize, args.max_client_lag_ms, None)
    folder = args.results / args.run
    folder.mkdir(parents=True, exist_ok=False)
    server_cpus, locust_cpus = cpu_split(args.pin)
    with ExitStack() as stack:
        target = args.target or stack.enter_context(llmstream_server(folder, args.server_args, server_cpus))
        (folder / "run.json").write_text(json.dumps(describe_run(args, target), indent=2) + "\n")
        print(
            f"load test {args.run}: {args.users} users, {args.duration:g} s, mix {args.mix}, against {target}"
        )
        locust_code = run_locust(args, target, folder, locust_cpus)
    latest = args.results / "latest"
    if latest.is_symlink() or not latest.exists():
        latest.unlink(missing_ok=True)
        latest.symlink_to(args.run)
    return conclude(folder, args.max_client_lag_ms, locust_code)


if __name__ == "__main__":
    sys.exit(main())
