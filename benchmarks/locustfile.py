"""Locust's fast client posting the seed's JSON with no wait between requests (64 users)."""

import time

from locust import FastHttpUser, constant, task


class Poster(FastHttpUser):
    wait_time = constant(0)

    @task
    def post(self) -> None:
        self.client.post("/hubstress/batch", json={"ts": int(time.time() * 1000), "url": "x"})
