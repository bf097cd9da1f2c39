"""The floor the operator is timed against in ``run.py --compare-floor``: the least a controller
can do to turn a new SFTJob into its trainer Job.

It watches SFTJobs and, for each it has not seen, creates what the operator creates before the
trainer's pods can start: the NetworkPolicy (when the operator's settings enable it), the
ConfigMap and the Job, rendered by the operator's own functions from the operator's own settings
and sent through the operator's own API client (``kube.Kube``: aiohttp, Kopf's login, the same
connection limit and timeout). The watch is a list-then-watch over aiohttp, as Kopf's. Nothing
else: no status, no events, no admission webhook or checks, no watch of Jobs or Pods.

Run it as the operator runs: ``KUBECONFIG`` for the operator's ServiceAccount and the chart's
``KUBESFT_*`` variables. It prints ``watching`` once its first list is done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from testing.devcluster.operator_as_in_its_image import hide_what_the_image_lacks

hide_what_the_image_lacks()  # the operator's memory and imports, as in its image

import aiohttp  # noqa: E402
import kopf  # noqa: E402

from kubesft_api.sftjob import GROUP, PLURAL, VERSION, parse_spec  # noqa: E402
from kubesft_operator.kube import Kube, find_connection  # noqa: E402
from kubesft_operator.network_policy import network_policy_settings, render_network_policy  # noqa: E402
from kubesft_operator.render import (  # noqa: E402
    Attempt,
    Owner,
    TrainerDefaults,
    render_configmap,
    render_job,
)
from kubesft_operator.settings import OperatorSettings, get_settings  # noqa: E402

logger = logging.getLogger("floor")


class Floor:
    """Creates the children of every SFTJob it has not seen, one task per SFTJob."""

    def __init__(self, settings: OperatorSettings, kube: Kube) -> None:
        self.kube = kube
        self.defaults = TrainerDefaults(settings.trainer_image, tuple(settings.trainer_image_pull_secrets))
        self.network_policy = network_policy_settings(settings)
        self._seen: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def added(self, body: dict[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        if uid not in self._seen:
            self._seen.add(uid)
            task = asyncio.create_task(self._create_children(body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _create_children(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
        try:
            spec = parse_spec(body.get("spec"))
            children = [render_configmap(owner, spec)]
            if self.network_policy is not None:
                children.insert(0, render_network_policy(owner, spec, self.network_policy))
            policy = spec.run_policy
            attempt = Attempt(
                0, suspended=bool(policy.queue_name), active_deadline_seconds=policy.active_deadline_seconds
            )
            children.append(render_job(owner, spec, attempt, self.defaults))
            for child in children:
                await self.kube.create_or_adopt(child)
        except Exception:
            logger.exception("creating the children of %s/%s failed", meta["namespace"], meta["name"])


async def watch_sftjobs(info: kopf.ConnectionInfo, floor: Floor) -> None:
    """List SFTJobs in every namespace, then watch from the list's version; list again when the
    watch's version has expired (410)."""
    url = f"{info.server.rstrip('/')}/apis/{GROUP}/{VERSION}/{PLURAL}"
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        timeout=aiohttp.ClientTimeout(total=None),  # Kopf's watches have none either
    ) as session:
        announced = False
        while True:
            async with session.get(url) as response:
                response.raise_for_status()
                listed = await response.json()
            for body in listed.get("items") or []:
                floor.added(body)
            if not announced:
                print("watching", flush=True)
                announced = True
            version = listed["metadata"]["resourceVersion"]
            while version:
                params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"}
                async with session.get(url, params=params) as response:
                    response.raise_for_status()
                    async for line in response.content:
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            version = ""  # expired: list again
                            break
                        version = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] == "ADDED":
                            floor.added(event["object"])


async def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    info = find_connection(kopf.OperatorSettings())
    kube = Kube(lambda: info)
    await kube.start()
    try:
        await watch_sftjobs(info, Floor(settings, kube))
    finally:
        await kube.close()


if __name__ == "__main__":
    asyncio.run(main())
