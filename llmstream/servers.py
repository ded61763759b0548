"""Run the app on Uvicorn, Hypercorn or Granian, with the same shutdown behaviour on each.

On SIGTERM or SIGINT, every worker process calls `StreamHub.begin_shutdown()` at once: /readyz turns 503,
new streams are refused with 503, and every open stream sends its final `close` event (which tells the
client to come back after `retry`) and ends. Then the server stops accepting, waits for the responses in
flight at most `grace` seconds, and the process exits 0.

Why not in the ASGI lifespan shutdown (Quart's `after_serving`)? Uvicorn and Hypercorn run it only after
every connection has closed, and an open stream never closes by itself: Uvicorn would wait forever, or
until `timeout_graceful_shutdown`, Hypercorn until its graceful timeout, and then cut the streams without
a final event. So each server gets a hook that runs when the signal arrives:

- Uvicorn: a `uvicorn.Server` whose `handle_exit` (its signal handler) starts the shutdown;
- Hypercorn: a `shutdown_trigger` that waits for the signal, starts the shutdown and returns;
- Granian: a Python-level signal handler in each worker, next to the one Granian's worker registers
  with its loop (see `_add_signal_hook`).

Every worker builds its own app with `create_app(settings)`; `settings` reach a worker as an argument of
its process (pickled), so flags, environment and defaults are resolved once, in the parent.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import math
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from quart import Quart

from llmstream import eager_accept
from llmstream.app import create_app
from llmstream.config import LoopName, Settings
from llmstream.hub import StreamHub
from llmstream.lean_connection import LeanHttpToolsProtocol
from llmstream.logging_setup import logging_config
from llmstream.sse_response import hub_of
from llmstream.supervisor import Supervisor, Worker

FULL_COLLECTION_EVERY = 100  # middle-generation collections per full one, on Uvicorn (below)
BACKLOG = 2048  # Uvicorn's default; the kernel's queue of connections not yet accepted


class ServerStartError(RuntimeError):
    """The server cannot start (e.g. the port is taken); the message says why."""


def serve(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; the exit status (0: stopped cleanly)."""
    if settings.server == "granian":
        return _run_granian(settings)
    worker: Worker = _run_uvicorn if settings.server == "uvicorn" else _run_hypercorn
    sock = bind_socket(settings.host, settings.port)
    if settings.workers == 1:
        worker(settings, sock)
        return 0
    return Supervisor(worker, settings, sock).run()


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound once in the parent and shared by every worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ServerStartError(f"cannot listen on {host}:{port}: {reason}") from None
    # Accepted sockets inherit TCP_NODELAY from the listener. asyncio sets it itself only on sockets
    # it creates with proto=IPPROTO_TCP; create_server() leaves proto 0, so without this every response
    # after the first on a keep-alive connection waited ~40 ms for Nagle + delayed ACK (Uvicorn, asyncio).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _loop_factory(loop: LoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop == "uvloop":
        from llmstream import batch_accept  # uvloop is an extra: imported only when asked for

        return batch_accept.new_event_loop
    return eager_accept.new_event_loop


# asyncio setting connections up as it accepts them, uvloop accepting in batches, as Uvicorn's `loop`
# setting names a loop factory of its own.
_UVICORN_LOOPS: dict[LoopName, str] = {
    "asyncio": "llmstream.eager_accept:new_event_loop",
    "uvloop": "llmstream.batch_accept:new_event_loop",
}


# ---- Uvicorn --------------------------------------------------------------------------------------


class _UvicornServer(uvicorn.Server):
    """Uvicorn's server, starting our shutdown from its signal handler."""

    def __init__(self, config: uvicorn.Config, hub: StreamHub) -> None:
        super().__init__(config)
        self.hub = hub
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler interrupts the loop anywhere: hand the work to the loop rather than doing it
        # here (call_soon_threadsafe is what asyncio's own signal handling uses).
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.hub.begin_shutdown)
        else:
            self.hub.begin_shutdown()
        # Uvicorn's own handle_exit also records the signal and raises it again once the server has
        # stopped ("cooperative signal handling", Kludex/uvicorn#1600): the process would then die of
        # SIGTERM (status -15) instead of exiting 0. So set the flags without recording the signal.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C: stop waiting
        else:
            self.should_exit = True


def _run_uvicorn(settings: Settings, sock: socket.socket) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        loop=_UVICORN_LOOPS[settings.loop],
        http=LeanHttpToolsProtocol,
        lifespan="on",
        log_config=logging_config(settings.log_level),
        log_level=settings.log_level.lower(),
        backlog=BACKLOG,
        # Without it Uvicorn waits forever for connections that do not close (Uvicorn's settings docs,
        # `--timeout-graceful-shutdown`); it takes whole seconds.
        timeout_graceful_shutdown=math.ceil(settings.grace),
    )
    # A full garbage collection walks every open stream's objects (2,000 streams: about 40 ms, with
    # every paced token waiting). It is there for cyclic garbage, and on this connection a closed one
    # leaves next to none (llmstream.lean_connection: 16 objects in 10 s of `make soak`'s churn, 4,862
    # with Uvicorn's own). So one full collection per FULL_COLLECTION_EVERY middle ones, not CPython's
    # 10. Not rarer: at 1,000 the lateness was the same, but resident memory rose 4.6% over a 10-minute
    # soak before it settled, with no garbage to find (docs/performance.md, seventh round).
    threshold0, threshold1, _ = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, FULL_COLLECTION_EVERY)
    _UvicornServer(config, hub_of(app)).run(sockets=[sock])


# ---- Hypercorn ------------------------------------------------------------------------------------


def _run_hypercorn(settings: Settings, sock: socket.socket) -> None:
    app = create_app(settings)
    config = HypercornConfig()
    # Hypercorn takes a listening socket as `fd://N` and owns it from then on (it wraps the descriptor
    # in a socket object of its own), so we give up ours with detach() rather than close it twice.
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = settings.grace
    config.backlog = BACKLOG
    # A logger (not "-") makes Hypercorn use it as it is instead of adding a handler and format of its
    # own (hypercorn/logging.py `_create_logger`); our configuration then applies.
    config.errorlog = logging.getLogger("hypercorn.error")
    with asyncio.Runner(loop_factory=_loop_factory(settings.loop)) as runner:
        runner.run(_serve_hypercorn(app, config, hub_of(app)))


async def _serve_hypercorn(app: Quart, config: HypercornConfig, hub: StreamHub) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        hub.begin_shutdown()
        # Returning makes Hypercorn stop accepting and wait for the connections in flight, at most
        # `graceful_timeout` seconds (hypercorn/asyncio/run.py `worker_serve`).

    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


# ---- Granian --------------------------------------------------------------------------------------


def _run_granian(settings: Settings) -> int:
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server as Granian

    # Granian binds in Rust and answers a taken port with a panic and a backtrace: try the address first
    # to fail with one line instead.
    bind_socket(settings.host, settings.port).close()

    server = Granian(
        "llmstream.app:create_app",  # only shown in Granian's log; the app comes from target_loader
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops(settings.loop),
        backlog=BACKLOG,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=logging_config(settings.log_level),
        # Granian waits for its workers without limit unless told otherwise, and a worker waits for its
        # connections: a client that reads nothing would hang the shutdown. Granian takes whole seconds.
        workers_kill_timeout=math.ceil(settings.grace),
        # Like our supervisor: replace a worker that dies, but not one that keeps dying at startup.
        respawn_failed_workers=True,
    )
    # Each worker process calls the loader to get its app (pickled when workers are spawned).
    server.serve(target_loader=functools.partial(_granian_app, settings), wrap_loader=False)
    # Granian returns normally also when it gave up on crashing workers; only a signal is a clean stop.
    return 0 if server.interrupt_signal else 1


def _granian_app(settings: Settings) -> Quart:
    app = create_app(settings)
    hub = hub_of(app)

    @app.before_serving
    async def _begin_shutdown_on_signal() -> None:
        # Runs in the worker's main thread, after Granian's worker has registered its own handlers
        # (granian/_signals.py `set_loop_signals`, called before the lifespan startup).
        _add_signal_hook(asyncio.get_running_loop(), hub.begin_shutdown)

    return app


def _add_signal_hook(loop: asyncio.AbstractEventLoop, hook: Callable[[], None]) -> None:
    """Run `hook` in `loop` on SIGTERM and SIGINT, next to the handlers the loop already has.

    Granian's worker learns of a signal through `loop.add_signal_handler`; the Rust server then stops
    accepting and waits for every connection to close before the lifespan shutdown runs, so an open
    stream would hold the worker until `workers_kill_timeout`. A second `add_signal_handler` would
    replace Granian's handler. A Python-level handler does not: the loop still gets the signal through
    its wakeup fd (`signal.set_wakeup_fd`, which is written whatever Python handler is installed) and
    calls Granian's handler, and our handler runs as well.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: object = previous) -> None:
            loop.call_soon_threadsafe(hook)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)
