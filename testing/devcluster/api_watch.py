"""List-then-watch over raw JSON, without building client model objects for every event."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.rest import ApiException

# A list function of the generated client, e.g. CoreV1Api.list_pod_for_all_namespaces.
ListFunction = Callable[..., Any]


class RawWatch:
    """Calls ``on_list(items)`` after every (re)list and ``on_event(type, object)`` for each change,
    until ``stop()``. A watch that expires (410 Gone) or drops is followed by a fresh list."""

    def __init__(
        self,
        list_function: ListFunction,
        on_list: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[str, dict[str, Any]], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        self._list = list_function
        self._on_list = on_list
        self._on_event = on_event
        self._on_error = on_error
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{getattr(list_function, '__name__', 'list')}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except AttributeError:
                response.close()
            except Exception:
                pass
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                listed = json.loads(self._list(_preload_content=False).data)
                self._on_list(listed.get("items") or [])
                self._watch(listed["metadata"]["resourceVersion"])
            except Exception as err:
                if self._stopping.is_set():
                    return
                if not (isinstance(err, ApiException) and err.status == 410):
                    self._on_error(err)
                self._stopping.wait(0.5)

    def _watch(self, resource_version: str) -> None:
        while not self._stopping.is_set():
            self._response = self._list(
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=300,
                _preload_content=False,
            )
            try:
                for line in _lines(self._response):
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            return
                        raise RuntimeError(f"watch error: {obj.get('message')}")
                    resource_version = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self._on_event(kind, obj)
            finally:
                self._response.release_conn()
                self._response = None


def _lines(response: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=65536, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
