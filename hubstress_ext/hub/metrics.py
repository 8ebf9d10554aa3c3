"""A scrape of the hub's own ``/hub/metrics`` during a run: what the hub says about itself
(running servers, pending spawns, request and spawn durations) next to what we measured.

Each scrape becomes rows (time, metric, labels, value). Histogram buckets are kept for the
first scrape (before the load) and the last (after it): their difference is the run's own
histogram, from which :mod:`hubstress_ext.results.hub_figures` estimates the hub's
percentiles; the scrapes between keep ``_count``/``_sum`` and gauges only, so a long run
stays small. A token without ``read:metrics`` ends the scraping with one warning, not a
failed run.
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


Row = tuple[float, str, str, float]


def parse_metrics(text: str, at: float) -> tuple[list[Row], list[Row]]:
    """(rows without buckets, bucket rows) of one scrape."""
    rows, buckets = [], []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = json.dumps(sample.labels, sort_keys=True) if sample.labels else ""
            row = (at, sample.name, labels, float(sample.value))
            (buckets if sample.name.endswith("_bucket") else rows).append(row)
    return rows, buckets


class MetricsScraper:
    def __init__(self, api: HubAPI, interval: float) -> None:
        self.api = api
        self.interval = interval
        self.rows: list[Row] = []
        self.first_buckets: list[Row] | None = None
        self.last_buckets: list[Row] = []
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
            rows, buckets = parse_metrics(resp.body.decode("utf-8", "replace"), time.time())
            self.rows += rows
            if self.first_buckets is None:
                self.first_buckets = buckets
            else:
                self.last_buckets = buckets
        return True

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.rows + (self.first_buckets or []) + self.last_buckets, columns=METRICS_COLUMNS
        )
