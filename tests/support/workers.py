"""The worker processes of a ``voxline serve --workers N``."""

from __future__ import annotations

import psutil

from tests.support.caller import Caller
from tests.support.server import RunningServer


def workers_of(server: RunningServer) -> list[psutil.Process]:
    """The worker processes: the supervisor's children that listen on the server's port."""
    found = []
    for child in psutil.Process(server.process.pid).children():
        try:
            if any(c.laddr and c.laddr.port == server.port for c in child.net_connections()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def worker_of(server: RunningServer, caller: Caller) -> int:
    """The pid of the worker that holds ``caller``'s connection."""
    return worker_of_port(server, caller.ws.local_address[1])


def worker_of_port(server: RunningServer, client_port: int) -> int:
    """The pid of the worker that holds the connection from local port ``client_port``."""
    for worker in workers_of(server):
        for conn in worker.net_connections():
            if conn.raddr and conn.raddr.port == client_port:
                return worker.pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")
