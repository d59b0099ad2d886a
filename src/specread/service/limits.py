"""What keeps one client, or one burst, from taking the whole service: a byte budget, per-client limits, disconnects.

* :class:`ByteBudget` bounds the request-body and image bytes the main process holds at
  once (``max_queued_bytes``). A request takes its share as its body *arrives*
  (:class:`Reservation`, through :class:`specread.service.guards.GuardMiddleware`), not once it
  is queued: a hundred large uploads read side by side would otherwise all be held before the
  first is refused. A refused request is answered 503 with ``Retry-After``.
* :class:`specread.service.guards.ClientLimitMiddleware` bounds the requests in flight from
  one client address (``max_client_requests``), so one client's burst queues behind its own
  requests, not in front of everyone else's. ``/healthz`` is never limited: a monitor must see
  a busy service as busy, not as dead.
* :func:`until_disconnected` runs a coroutine (the wait for an OCR worker) but cancels it
  when the client goes away: an abandoned request leaves the queue instead of costing a
  worker's time while fresh requests wait behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable
from typing import TypeVar

import anyio
from starlette.types import Receive

from specread.errors import ApiError

__all__ = [
    "HEALTH_PATH",
    "ByteBudget",
    "ClientGoneError",
    "Reservation",
    "busy",
    "until_disconnected",
]

T = TypeVar("T")

HEALTH_PATH = "/healthz"
"""The path every limit lets through."""


def busy(message: str) -> ApiError:
    """The 503 a client gets when a limit is reached: it may retry in a second."""
    return ApiError(503, "busy", message, headers={"Retry-After": "1"})


class ByteBudget:
    """A count of bytes held against a limit, shared by every request of one app (thread-safe).

    Args:
        limit: the most bytes :meth:`take` lets be held at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes if that stays within the limit; False (nothing held) if not."""
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def force(self, size: int) -> None:
        """Hold ``size`` bytes even past the limit: a copy that must be made (to hand an image to a
        worker process) is counted, so new bytes are refused while it lives, but never refused itself."""
        with self._lock:
            self.used += size

    def give(self, size: int) -> None:
        """Stop holding ``size`` bytes."""
        with self._lock:
            self.used -= size


class Reservation:
    """One request's share of a :class:`ByteBudget`; :meth:`close` gives all of it back.

    Args:
        budget: the app's budget.
    """

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int) -> None:
        """Hold ``size`` more bytes for this request.

        Raises:
            ApiError: 503 ``busy`` when the budget has no room left.
        """
        if not self.budget.take(size):
            raise busy("the server holds as much upload data as it may; retry shortly")
        self.held += size

    def give(self, size: int) -> None:
        """Give back ``size`` of the bytes held (a copy that is gone)."""
        size = min(size, self.held)
        self.budget.give(size)
        self.held -= size

    def close(self) -> None:
        self.give(self.held)


class ClientGoneError(Exception):
    """The client disconnected while its request waited; there is nobody to answer."""


async def until_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, but cancel it as soon as ``receive`` says the client disconnected.

    Call it once the request body has been read: from then on the only message ``receive``
    can bring is ``http.disconnect``.

    Raises:
        ClientGoneError: the client went away first (``work`` was cancelled).
    """
    gone = False
    finished = False
    error: Exception | None = None

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group.cancel_scope)
        try:
            result = await work
            finished = True
        except Exception as exc:  # raised out of the group, it would reach the caller wrapped in an ExceptionGroup
            error = exc
        finally:
            group.cancel_scope.cancel()
    if error is not None:
        raise error
    if not finished:
        if gone:
            raise ClientGoneError
        raise anyio.get_cancelled_exc_class()  # pragma: no cover - the caller itself was cancelled
    return result
