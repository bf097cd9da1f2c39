"""A bound on the API calls in flight, under which the calls that lead to a Job go first.

When many SFTJobs arrive at once, every reconcile wants the API server at the same time: the
creates of Jobs and their inputs, and the status patches and Events that report on them. In the
order they were asked for, a Job created late waits behind the reports of the jobs before it; with
the urgent calls first, the last Job of a burst is created after about as many calls as a
controller that only creates Jobs would make, and the reports follow.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    """At most ``limit`` holders at once; a freed slot goes to the oldest urgent waiter, if any,
    else to the oldest other one."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a limit of at least one slot is needed")
        self._free = limit
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._other: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in (*self._urgent, *self._other))

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        # A freed slot goes straight to a live waiter, so free slots mean nobody waits.
        if self._free > 0:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._other).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # handed a slot just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        for queue in (self._urgent, self._other):
            while queue:
                granted = queue.popleft()
                if not granted.done():
                    granted.set_result(None)
                    return
        self._free += 1
