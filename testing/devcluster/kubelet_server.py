"""The process node's kubelet endpoint: ``/containerLogs/<namespace>/<pod>/<container>`` over HTTPS.

The apiserver's pods/log proxies here (``kubectl logs``), as it would to a kubelet: it checks the
node's serving certificate against the cluster CA and shows a client certificate, and the node
asks RBAC (a SubjectAccessReview of ``nodes/proxy``, what a kubelet in webhook mode asks) whether
that identity may read logs. Only the log endpoint is served; exec, attach and port-forward are not.
"""

from __future__ import annotations

import datetime
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kubernetes import client

from kubesft_api.times import parse_time
from testing.devcluster.container_logs import LogQuery, log_files, read_log
from testing.devcluster.pki import CertificatePair

log = logging.getLogger("devcluster.kubelet")


class LogRequestError(Exception):
    """A log request the kubelet would refuse, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


FindLog = Callable[[str, str, str, bool], Path]
"""(namespace, pod, container, previous) -> the log file, or LogRequestError."""
Authorize = Callable[[str, list[str]], bool]
"""(user, groups) -> whether that identity may read this node's logs."""


@dataclass(frozen=True)
class KubeletTls:
    """What the node's endpoint needs from the cluster's CA."""

    ca_cert: Path
    issue_serving: Callable[[str, str], CertificatePair]
    """(node name, address) -> the node's serving certificate."""


def pod_log_finder(pod_directory: Callable[[str, str], Path | None]) -> FindLog:
    """Finds logs under the pod directories the node keeps (``pod_directory``: None if the pod
    never ran here), answering as the kubelet does when there is none."""

    def find(namespace: str, pod: str, container: str, previous: bool) -> Path:
        directory = pod_directory(namespace, pod)
        if directory is None:
            raise LogRequestError(404, f'pod "{pod}" in namespace "{namespace}" not found on this node')
        runs = log_files(directory, container)
        if previous:
            if len(runs) < 2:
                raise LogRequestError(
                    400, f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            return runs[-2]
        if not runs:
            raise LogRequestError(400, f'container "{container}" in pod "{pod}" is waiting to start')
        return runs[-1]

    return find


def rbac_authorizer(api: client.ApiClient, node: str) -> Authorize:
    """Asks the apiserver, as a kubelet in webhook mode does, whether an identity may use
    ``nodes/proxy`` of ``node`` (what reading a container log needs)."""
    authorization = client.AuthorizationV1Api(api)

    def allowed(user: str, groups: list[str]) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {
                    "verb": "get",
                    "resource": "nodes",
                    "subresource": "proxy",
                    "name": node,
                },
            },
        }
        answer = authorization.create_subject_access_review(review)
        return bool(answer.status and answer.status.allowed)

    return allowed


def _flag(values: dict[str, list[str]], name: str) -> bool:
    return values.get(name, ["false"])[-1].lower() in ("true", "1")


def _number(values: dict[str, list[str]], name: str) -> int | None:
    if name not in values:
        return None
    try:
        return int(values[name][-1])
    except ValueError:
        raise LogRequestError(400, f"{name}: {values[name][-1]!r} is not an integer") from None


def parse_query(query: str, now: datetime.datetime) -> tuple[LogQuery, bool]:
    """The log query and ``previous`` from a ``/containerLogs`` query string."""
    values = parse_qs(query)
    since: datetime.datetime | None = None
    seconds = _number(values, "sinceSeconds")
    if seconds is not None:
        since = now - datetime.timedelta(seconds=seconds)
    elif "sinceTime" in values:
        try:
            since = parse_time(values["sinceTime"][-1])
        except ValueError:
            raise LogRequestError(400, f"sinceTime: {values['sinceTime'][-1]!r} is not RFC 3339") from None
    query_ = LogQuery(
        follow=_flag(values, "follow"),
        tail_lines=_number(values, "tailLines"),
        timestamps=_flag(values, "timestamps"),
        limit_bytes=_number(values, "limitBytes"),
        since=since,
    )
    return query_, _flag(values, "previous")


def _identity(certificate: dict[str, Any] | None) -> tuple[str, list[str]]:
    user, groups = "", []
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return user, groups


class KubeletServer:
    """Serves container logs at ``https://address:port``; ``port`` is what the Node advertises."""

    def __init__(
        self, address: str, serving: CertificatePair, ca_cert: Path, find_log: FindLog, authorize: Authorize
    ) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_cert))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(serving.cert), str(serving.key))
        self._stopping = threading.Event()
        handler = _handler(find_log, authorize, self._stopping.is_set)
        self._server = ThreadingHTTPServer((address, 0), handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="devcluster-kubelet", daemon=True
        )

    @classmethod
    def for_node(
        cls,
        api: client.ApiClient,
        node: str,
        address: str,
        tls: KubeletTls,
        pod_directory: Callable[[str, str], Path | None],
    ) -> KubeletServer:
        server = cls(
            address,
            tls.issue_serving(node, address),
            tls.ca_cert,
            pod_log_finder(pod_directory),
            rbac_authorizer(api, node),
        )
        server._thread.start()
        return server

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


def _handler(
    find_log: FindLog, authorize: Authorize, stopping: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def do_GET(self) -> None:
            try:
                self._serve()
            except LogRequestError as error:
                self._plain(error.status, str(error))
            except (OSError, ssl.SSLError):
                # The client went away mid-stream, or the log with it (the pod was removed).
                self.close_connection = True

        def _serve(self) -> None:
            user, groups = _identity(self.connection.getpeercert())
            if not authorize(user, groups):
                raise LogRequestError(
                    403, f"Forbidden (user={user}, verb=get, resource=nodes, subresource=proxy)"
                )
            url = urlsplit(self.path)
            parts = [unquote(part) for part in url.path.split("/")]
            if len(parts) != 5 or parts[1] != "containerLogs":
                raise LogRequestError(404, f"{url.path} is not served by the process node")
            query, previous = parse_query(url.query, datetime.datetime.now(datetime.UTC))
            path = find_log(parts[2], parts[3], parts[4], previous)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in read_log(path, query, stopped=stopping):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def _plain(self, status: int, message: str) -> None:
            body = message.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
