"""A re-creation of the seed's service "B" design, for side-by-side benchmarks only.

Written from the seed document's description (not its code): Flask's threaded server, each
request puts an item on a shared queue (max 1000) and blocks on an event; consumer threads
spin in a loop checking the queue size (the busy wait), take ``batch_size`` items when there
are enough and answer them; items that waited over 1 s in a partial batch are answered with
an error; a request that finds the queue past 800 answers "busy" with HTTP 200 (its queued
item is never answered). These are the defects hubstress's endpoint is measured against.

    python benchmarks/seed_service.py PORT [BATCH_SIZE]
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time

from flask import Flask, request

app = Flask(__name__)
items: queue.Queue = queue.Queue(1000)
BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 10


class Item:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.event = threading.Event()
        self.answer: dict = {}


@app.route("/testB", methods=["POST"])
def test_b():
    item = Item(request.get_data())
    items.put(item)
    if items.qsize() >= 800:
        return {"busy": "too many requests"}
    item.event.wait()
    return item.answer


def answer(batch: list[Item]) -> None:
    for item in batch:
        ts = int(json.loads(item.data)["ts"])
        now = int(time.time() * 1000)
        item.answer = {"rec_ts": ts, "resp_ts": now, "ts_diff": now - ts}
        item.event.set()


def consumer() -> None:
    since = time.time()
    while True:  # the busy wait: no blocking, no sleep
        if items.qsize() >= BATCH:
            answer([items.get() for _ in range(BATCH)])
            since = time.time()
        elif time.time() - since >= 1.0:
            while not items.empty():
                item = items.get()
                item.answer = {"error": "not enough requests for a batch"}
                item.event.set()
            since = time.time()


if __name__ == "__main__":
    for _ in range(3):
        threading.Thread(target=consumer, daemon=True).start()
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
