"""Spreading connections over `--num-procs` workers: the shared board of loads, and a shared
listener that takes one connection per loop turn and leaves connections to a less loaded sibling.
The board also carries each worker's session count and full apps, for admission control."""

from __future__ import annotations

import asyncio
import os
import socket

from tornado.ioloop import IOLoop

from aperture.web.listener import shared_listener
from aperture.worker_loads import APP_BITS, DEFER_LIMIT, STALE, WorkerLoads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_is_over_its_share_only_against_a_live_sibling() -> None:
    clock = Clock()
    loads = WorkerLoads(3, clock)
    assert not loads.over_share(0, 50)  # nobody else has published: no sibling to wait for
    loads.publish(1, 10)
    loads.publish(2, 4)
    assert loads.over_share(0, 8)  # 8 > 4 + 2 + 0.5
    assert not loads.over_share(0, 6)
    clock.now += STALE  # siblings silent for a second: dead, starting or stuck
    assert not loads.over_share(0, 50)
    loads.publish(2, 4)
    loads.withdraw(2)
    assert not loads.over_share(0, 50)


def test_the_board_is_shared_with_forked_workers() -> None:
    loads = WorkerLoads(2)
    pid = os.fork()
    if pid == 0:
        loads.publish(1, 7)
        os._exit(0)
    os.waitpid(pid, 0)
    assert loads.over_share(0, 10) and not loads.over_share(0, 9)


def test_siblings_with_room_for_a_session() -> None:
    clock = Clock()
    loads = WorkerLoads(4, clock)
    assert loads.with_room(0, 0, 5) == []  # nobody has published: no sibling to forward to
    for number in (1, 2, 3):
        loads.publish(number, 0)
    loads.publish_sessions(1, 5, 0)  # at --max-sessions 5
    loads.publish_sessions(2, 3, 0b10)  # app 1 at its per-app limit
    loads.publish_sessions(3, 1, 0)
    assert loads.with_room(0, 0, 5) == [3, 2]  # fewest sessions first
    assert loads.with_room(0, 1, 5) == [3]
    assert loads.with_room(0, None, 5) == [3, 2]  # room for any app (readiness)
    assert loads.with_room(0, 0, 0) == [3, 2, 1]  # no process limit
    assert loads.with_room(3, 0, 5) == [2]  # never itself
    loads.publish(1, 9)  # a connection count does not touch the session count
    assert loads.with_room(0, 0, 5) == [3, 2]
    loads.withdraw(3)  # stopping
    assert loads.with_room(0, 0, 5) == [2]
    clock.now += STALE  # silent siblings are not forwarded to
    assert loads.with_room(0, 0, 5) == []


def test_apps_past_the_mask_are_taken_to_have_room() -> None:
    loads = WorkerLoads(2)
    loads.publish(1, 0)
    loads.publish_sessions(1, 0, (1 << APP_BITS) - 1)
    assert loads.with_room(0, APP_BITS - 1, 0) == []
    assert loads.with_room(0, APP_BITS, 0) == [1]
    loads.publish_sessions(1, -3, 1 << (APP_BITS + 4))  # bad values are clamped, not raised
    assert loads.with_room(0, 0, 1) == [1]


def test_session_counts_are_shared_with_forked_workers() -> None:
    loads = WorkerLoads(2)
    pid = os.fork()
    if pid == 0:
        loads.publish(1, 0)
        loads.publish_sessions(1, 2, 0)
        os._exit(0)
    os.waitpid(pid, 0)
    assert loads.with_room(0, 0, 3) == [1] and loads.with_room(0, 0, 2) == []


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def test_one_connection_per_loop_turn() -> None:
    sock = _listening()
    clients = [socket.create_connection(sock.getsockname()) for _ in range(3)]
    listener = shared_listener(sock, lambda: False)
    try:
        listener.accept()[0].close()
        try:
            listener.accept()
            raise AssertionError("a second connection in the same turn")
        except BlockingIOError:
            pass
        await asyncio.sleep(0)
        listener.accept()[0].close()
    finally:
        listener.close()
        for client in clients:
            client.close()


async def test_a_worker_over_its_share_waits_then_takes_the_connection_itself() -> None:
    sock = _listening()
    client = socket.create_connection(sock.getsockname())
    asks: list[int] = []

    def over_share() -> bool:
        asks.append(1)
        return True

    listener = shared_listener(sock, over_share)
    try:
        loop = asyncio.get_running_loop()
        accepted = loop.create_future()

        def ready() -> None:  # what Tornado's accept handler does, reduced
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return
            IOLoop.current().remove_handler(listener.fileno())
            accepted.set_result(conn)

        IOLoop.current().add_handler(listener.fileno(), lambda fd, events: ready(), IOLoop.READ)
        started = loop.time()
        conn = await asyncio.wait_for(accepted, 5)
        waited = loop.time() - started
        conn.close()
        assert len(asks) >= 2  # it left the connection to a sibling at least once
        assert DEFER_LIMIT <= waited < DEFER_LIMIT + 1.0
    finally:
        listener.close()
        client.close()
