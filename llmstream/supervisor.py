"""Run N worker processes on one listening socket; on SIGTERM/SIGINT stop them and exit 0.

Used for `--workers N` on Uvicorn and Hypercorn. Both ship a multiprocess runner, but neither lets each
worker run our shutdown hook: Uvicorn's `Multiprocess(config, sockets)` builds a plain `uvicorn.Server`
in every worker (uvicorn/supervisors/multiprocess.py, 0.54: no `target` argument to pass our server's
`run`), and Hypercorn's `hypercorn.run.run`
loads the app from `config.application_path` and shuts workers down through a multiprocessing event
that it polls. So we supervise the workers ourselves, the way both of them do it: the parent binds the
socket once, hands it to `spawn`ed children (pickled through `multiprocessing.reduction`, as Uvicorn
does), forwards SIGTERM to them when it gets SIGTERM or SIGINT, and waits for them.

A worker that dies while the server runs is replaced, unless it died during its first seconds: that is
a startup failure (the app or the loop cannot start) that a restart would only repeat.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from llmstream.config import Settings
from llmstream.logging_setup import configure_logging

Worker = Callable[[Settings, socket.socket], None]

logger = logging.getLogger("llmstream.supervisor")

STARTUP_SECONDS = 5.0  # a worker that dies sooner than this after its start failed to start
POLL_SECONDS = 0.2
KILL_SLACK = 2.0  # beyond the grace period, before a worker that did not stop is killed

_spawn = multiprocessing.get_context("spawn")


def _worker_main(worker: Worker, settings: Settings, sock: socket.socket) -> None:
    # Until the server installs its own handlers, Ctrl+C (SIGINT to the whole process group) must not
    # end a starting worker with a KeyboardInterrupt traceback: the parent forwards it as SIGTERM anyway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A spawned child starts with a fresh interpreter: logging is configured again here.
    configure_logging(settings.log_level)
    worker(settings, sock)


class Supervisor:
    def __init__(self, worker: Worker, settings: Settings, sock: socket.socket) -> None:
        self.worker = worker
        self.settings = settings
        self.sock = sock
        self.processes: list[BaseProcess] = []
        self.started_at: dict[int, float] = {}
        self.stopping = False
        # The signal handler writes a byte here, so that the main loop wakes up at once to forward it.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            logger.info("supervisor [%d]: starting %d workers", os.getpid(), self.settings.workers)
            self.processes = [self._start() for _ in range(self.settings.workers)]
            failed = self._watch()
            return self._stop() or failed
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag and a wake-up: the main loop does the work.
        if not self.stopping:
            logger.info("supervisor: %s received, stopping workers", signal.Signals(signum).name)
        self.stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def _start(self) -> BaseProcess:
        process = _spawn.Process(
            target=_worker_main, args=(self.worker, self.settings, self.sock), name="llmstream-worker"
        )
        process.start()
        assert process.pid is not None
        self.started_at[process.pid] = time.monotonic()
        return process

    def _watch(self) -> int:
        """Keep the workers running until a signal; 1 if a worker failed to start, else 0."""
        while not self.stopping:
            wait([self._wake_r, *(process.sentinel for process in self.processes)], timeout=POLL_SECONDS)
            for index, process in enumerate(self.processes):
                if self.stopping or process.is_alive():
                    continue
                assert process.pid is not None
                lived = time.monotonic() - self.started_at.pop(process.pid)
                if lived < STARTUP_SECONDS:
                    logger.error("worker %d failed at startup (%s); stopping", process.pid, process.exitcode)
                    self.stopping = True
                    return 1
                logger.warning("worker %d exited with %s; starting another", process.pid, process.exitcode)
                self.processes[index] = self._start()
        return 0

    def _stop(self) -> int:
        """Tell every worker to stop, wait for them; 0 if all of them stopped cleanly."""
        # From now on nobody accepts on our copy of the socket: close it, so that once the workers have
        # closed theirs, new connections are refused at once instead of waiting in the accept queue.
        self.sock.close()
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace + KILL_SLACK
        status = 0
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker %d did not stop within the grace period; killing it", process.pid)
                process.kill()
                process.join()
                status = 1
            elif process.exitcode not in (0, -signal.SIGTERM):
                # -SIGTERM: the worker was still starting, before its server handled signals, so it had
                # no connection to finish. Anything else is a failure.
                logger.error("worker %d exited with %s", process.pid, process.exitcode)
                status = 1
        logger.info("supervisor [%d]: all workers stopped", os.getpid())
        return status
