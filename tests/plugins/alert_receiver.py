"""Fixtures for alert hook tests: a local HTTP receiver of alerts, and a port nobody listens on.

:class:`AlertReceiver` is an :class:`~rotator_sandbox._server.Emulator` that accepts any POST,
remembers it with its headers in :attr:`AlertReceiver.received` and answers ``status`` (200 by
default; set it to 202 like PagerDuty, or 500). Faults armed with ``fail_next`` answer before
the receiver sees the request, so ``received`` holds delivered requests only, while the
emulator's ``log`` holds every attempt (retries are counted there).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rotator_sandbox._server import Emulator, Request, Response


@dataclass(frozen=True)
class Received:
    """One request the receiver accepted."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name, or None."""
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


#: Every request any receiver of this process accepted (the leak guard reads alert payloads).
ALL_RECEIVED: list[Received] = []


class AlertReceiver(Emulator):
    """Records alert deliveries and answers a configurable status."""

    name = "alert-receiver"

    def __init__(self, *, status: int = 200, answer: Any = None) -> None:
        super().__init__()
        self.status = status
        self.answer = answer
        self._received: list[Received] = []
        self._received_lock = threading.Lock()

    @property
    def received(self) -> list[Received]:
        """A copy of every accepted request, oldest first."""
        with self._received_lock:
            return list(self._received)

    def bodies(self) -> list[Any]:
        """The JSON bodies of every accepted request."""
        return [r.json() for r in self.received]

    def handle(self, request: Request) -> Response:
        """Remember the request and answer ``status``."""
        received = Received(request.method, request.path, dict(request.headers), request.body)
        with self._received_lock:
            self._received.append(received)
        ALL_RECEIVED.append(received)
        return Response(self.status, self.answer)

    def error_response(self, status: int, message: str) -> Response:
        """A plain JSON error (receivers' bodies are never quoted by the rotator)."""
        return Response(status, {"error": message})


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., AlertReceiver]]:
    """A factory of started alert receivers, all stopped at teardown."""
    started: list[AlertReceiver] = []

    def make(**kwargs: Any) -> AlertReceiver:
        receiver = AlertReceiver(**kwargs)
        receiver.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(make_receiver: Callable[..., AlertReceiver]) -> AlertReceiver:
    """A started alert receiver answering 200."""
    return make_receiver()


@pytest.fixture
def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` of a port that was free a moment ago (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
