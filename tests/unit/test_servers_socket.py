"""The listening socket that every server and worker shares."""

from __future__ import annotations

import socket

from llmstream.servers import bind_socket


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
