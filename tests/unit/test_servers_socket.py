"""The listening sockets: one for a single-process server, one per worker on one address."""

from __future__ import annotations

import contextlib
import socket

import pytest

from llmstream.servers import ServerStartError, bind_socket, bind_worker_sockets


def test_listening_socket_sets_tcp_nodelay_so_keepalive_responses_do_not_stall() -> None:
    # Regression: without TCP_NODELAY on the listener, Uvicorn on asyncio answered every request after
    # the first on a keep-alive connection ~40 ms late (Nagle's algorithm meeting delayed ACKs).
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client = socket.create_connection(sock.getsockname()[:2])
        accepted, _ = sock.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_each_worker_has_a_socket_of_its_own_on_one_address() -> None:
    socks = bind_worker_sockets("127.0.0.1", 0, 3)
    try:
        assert len({sock.fileno() for sock in socks}) == 3
        assert len({sock.getsockname() for sock in socks}) == 1
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in socks)
        assert all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in socks)
    finally:
        for sock in socks:
            sock.close()


def test_connections_are_spread_evenly_over_the_workers_sockets() -> None:
    # Regression: with one socket that every worker accepted from, whichever worker woke first took
    # every connection waiting, and one of two workers held 78-83% of a few hundred paced streams.
    socks = bind_worker_sockets("127.0.0.1", 0, 2)
    clients = []
    try:
        for _ in range(400):
            clients.append(socket.create_connection(socks[0].getsockname()[:2]))
        counts = []
        for sock in socks:
            sock.setblocking(False)
            accepted = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.accept()[0].close()
                    accepted += 1
            counts.append(accepted)
        assert sum(counts) == 400
        # A hash of each connection's addresses picks its socket: a binomial share, within 35-65% of
        # 400 unless something is 6 standard deviations off.
        assert all(140 <= count <= 260 for count in counts), counts
    finally:
        for sock in [*socks, *clients]:
            sock.close()


def test_worker_sockets_do_not_join_another_process_s_sockets_on_the_address() -> None:
    # A listener of someone else's with SO_REUSEPORT would otherwise share its connections with ours.
    stranger = bind_socket("127.0.0.1", 0, reuse_port=True)
    try:
        with pytest.raises(ServerStartError, match=r"cannot listen on 127\.0\.0\.1:\d+: .*in use"):
            bind_worker_sockets("127.0.0.1", stranger.getsockname()[1], 2)
    finally:
        stranger.close()
