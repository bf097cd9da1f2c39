"""``python -m kubesft_operator``: run the operator with settings from KUBESFT_* variables."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time

import kopf

from kubesft_operator.settings import get_settings


class _RefusalsAreNotErrors(logging.Filter):
    """Kopf logs each refused admission as an error of its own; the webhook logs it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.ERROR and record.getMessage().startswith("Webhook '"))


def peering_identity() -> str:
    """This replica's name in the peering object: its pod name (the hostname), start time and a
    random suffix. Kopf's own default asks the user database for the process's user name, which
    fails for a UID the image's /etc/passwd does not list (any runAsUser the chart is given)."""
    pod = os.environ.get("POD_ID") or socket.gethostname()
    return f"{pod}/{time.strftime('%Y%m%d%H%M%S', time.gmtime())}/{secrets.token_hex(2)}"


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "DEBUG":
        # One line per watch event and per admission request would drown everything else.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(_RefusalsAreNotErrors())
    import kubesft_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=settings.watch_namespaces,
        liveness_endpoint=f"http://{settings.listen_address}:{settings.health_port}/healthz",
        standalone=settings.standalone,
        peering_name=None if settings.standalone else settings.peering_name,
        priority=settings.peering_priority,
        identity=peering_identity(),  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
    )


if __name__ == "__main__":
    main()
