"""One call run on a thread of its own, whose result (or error) is taken later, where it is needed.

The resume's checkpoint is found and downloaded this way while torch imports and the model and
the data load: the way back from a preemption then waits only for what is left of the download,
not all of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """``work`` starts at once; ``result()`` waits for it and returns its value or raises its error.

    The thread is a daemon: a run that fails before it needs the result exits without waiting for
    a download it no longer wants.
    """

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._work = work
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self.started = time.monotonic()
        self.seconds: float | None = None
        """How long ``work`` ran, once it has ended."""
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as error:
            self._error = error
        finally:
            self.seconds = time.monotonic() - self.started
            self._done.set()

    def result(self) -> T:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
