"""A scrape of the hub's own ``/hub/metrics`` during a run: what the hub says about itself
(running servers, pending spawns, request and spawn durations) next to what we measured.

Each scrape becomes rows (time, metric, labels, value). Histogram buckets are left out (their
``_count`` and ``_sum`` stay), so a long run stays small. A token without ``read:metrics`` ends
the scraping with one warning, not a failed run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from hubstress_ext.hub.api import HubAPI

log = logging.getLogger("hubstress")

METRICS_COLUMNS = ["time", "metric", "labels", "value"]


def parse_metrics(text: str, at: float) -> list[tuple[float, str, str, float]]:
    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket") or sample.name.endswith("_created"):
                continue
            labels = json.dumps(sample.labels, sort_keys=True) if sample.labels else ""
            rows.append((at, sample.name, labels, float(sample.value)))
    return rows


class MetricsScraper:
    def __init__(self, api: HubAPI, interval: float) -> None:
        self.api = api
        self.interval = interval
        self.rows: list[tuple[float, str, str, float]] = []
        self.error: str | None = None

    async def run(self) -> None:
        """Scrape every ``interval`` seconds until cancelled (the run owns this task)."""
        while True:
            if not await self.scrape_once():
                return
            await asyncio.sleep(self.interval)

    async def scrape_once(self) -> bool:
        """One scrape; False once scraping cannot work (no read:metrics, no such page).

        The run also calls it once when the load ends, so the last rows describe the hub
        after everything the load did (a periodic scrape may fall just before the last spawn).
        """
        if self.error is not None:
            return False
        resp = await self.api.metrics()
        if resp.status in (401, 403, 404):
            self.error = f"cannot read {self.api.metrics_url}: {resp.reason()}"
            if resp.status != 404:
                self.error += " (the token needs the read:metrics scope)"
            log.warning("hub metrics: %s; scraping stopped", self.error)
            return False
        if resp.ok:
            self.rows += parse_metrics(resp.body.decode("utf-8", "replace"), time.time())
        return True

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=METRICS_COLUMNS)
