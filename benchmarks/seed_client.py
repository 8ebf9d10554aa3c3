"""The seed 003 client ("A") re-created: a 127-thread pool, each request a fresh
``requests.post`` (no session, so a new connection each time), JSON with a fresh ``ts``.
Bounded by time instead of the seed's fixed 2,000 tasks, so it can be compared over a window.

    python benchmarks/seed_client.py URL SECONDS
"""

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

ok = failed = 0
lock = threading.Lock()


def worker(url: str, until: float) -> None:
    global ok, failed
    while time.time() < until:
        payload = {"ts": int(round(time.time() * 1000)), "url": "https://example.com/image.png"}
        try:
            r = requests.post(url, data=json.dumps(payload), timeout=3)
            good = r.status_code == 200 and "ts_diff" in r.json()
        except requests.RequestException:
            good = False
        with lock:
            if good:
                ok += 1
            else:
                failed += 1


if __name__ == "__main__":
    url, seconds = sys.argv[1], float(sys.argv[2])
    until = time.time() + seconds
    with ThreadPoolExecutor(max_workers=127) as pool:
        for _ in range(127):
            pool.submit(worker, url, until)
    print(json.dumps({"ok": ok, "failed": failed}))
