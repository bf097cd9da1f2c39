"""A fake Kubernetes API server on loopback: canned answers per method and path, requests kept.

The client under test talks to it through the official kubernetes client and a real kubeconfig,
so everything above the HTTP boundary (config loading, serialisation, error bodies) is real.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

SFTJOBS = "/apis/kubesft.io/v1alpha1/namespaces/{ns}/sftjobs"


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    """JSON-serialisable, or bytes/str sent as they are."""
    content_type: str = "application/json"
    delay: float = 0.0
    cut: bool = False
    """Close the connection before the body is complete, as a dropped connection does."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-case names."""
    body: Any


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A Kubernetes ``Status`` error object, as the API server sends it."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def watch_body(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(json.dumps({"type": kind, "object": obj}).encode() + b"\n" for kind, obj in events)


@dataclass
class FakeApi:
    routes: dict[tuple[str, str, bool], list[Answer]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def on(self, method: str, path: str, *answers: Answer, watch: bool = False) -> None:
        """Answer ``method path`` with each of ``answers`` in turn, then the last one again."""
        self.routes[(method, path, watch)] = list(answers)

    def answer(self, method: str, path: str, query: dict[str, list[str]]) -> Answer:
        watching = query.get("watch", ["false"])[0].lower() == "true"
        answers = self.routes.get((method, path, watching))
        if not answers:
            return Answer(404, b"404 page not found", "text/plain")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parsed = urlparse(self.path)
                query = parse_qs(parsed.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                headers = {key.lower(): value for key, value in self.headers.items()}
                api.requests.append(Request(self.command, parsed.path, query, headers, body))
                answer = api.answer(self.command, parsed.path, query)
                time.sleep(answer.delay)
                data = answer.body
                if not isinstance(data, bytes | str):
                    data = json.dumps(data)
                payload = data.encode() if isinstance(data, str) else data
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(payload) + (1000 if answer.cut else 0)))
                self.end_headers()
                self.wfile.write(payload)
                if answer.cut:
                    self.wfile.flush()
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def kubeconfig(self, directory: Path, namespace: str | None = "team", server: str | None = None) -> Path:
        """A kubeconfig with one context, ``fake``, pointing at this server."""
        context: dict[str, Any] = {"cluster": "fake", "user": "fake"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": server or self.url}}],
            "users": [{"name": "fake", "user": {"token": "secret-token"}}],
            "contexts": [{"name": "fake", "context": context}],
            "current-context": "fake",
        }
        path = directory / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path


def sftjob(name: str = "smol", namespace: str = "team", **status: Any) -> dict[str, Any]:
    """An SFTJob as the API server returns it, with ``status`` if given."""
    body: dict[str, Any] = {
        "apiVersion": "kubesft.io/v1alpha1",
        "kind": "SFTJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "u-1",
            "resourceVersion": "7",
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {
            "model": {"name": "HuggingFaceTB/SmolLM2-135M", "chatTemplate": "chatml"},
            "dataset": {"name": "HuggingFaceTB/smoltalk"},
            "checkpoints": {"uri": "s3://bucket/ckpt", "endpointUrl": "http://127.0.0.1:1"},
            "output": {"uri": "s3://bucket/out"},
        },
    }
    if status:
        body["status"] = status
    return body
