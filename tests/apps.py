"""A real Tornado app for the load generator's tests, run as its own process.

    python -m tests.apps PORT

Paths: /echo (answers like the seed's endpoint), /stall (the whole server blocks for
STALL_MS on its STALL_AT-th request: a real stall, the event loop stops), /status/N (answers
N with a JSON error), /busy (503 {"error": "busy"}), /slow (answers after 5 s), /drop (closes
the connection without answering), /count (how many requests /stall and /echo saw),
/shard (answers like /echo and notes when each request of each ``X-Hubstress-Shard`` arrived;
GET /shard: per shard, the count and the first and last arrival, epoch seconds), /big (a
100 KB JSON answer the load generator must read and parse).
"""

import asyncio
import json
import sys
import time

from tornado import web

STALL_AT = 200
STALL_MS = 600
seen = {"n": 0}


class Echo(web.RequestHandler):
    def post(self) -> None:
        seen["n"] += 1
        ts = json.loads(self.request.body)["ts"]
        now = int(time.time() * 1000)
        self.finish({"rec_ts": ts, "resp_ts": now, "ts_diff": now - ts, "batch_size": 1})


class Stall(Echo):
    def post(self) -> None:
        if seen["n"] == STALL_AT:
            time.sleep(STALL_MS / 1000)  # blocks the event loop: every connection waits
        super().post()


class Status(web.RequestHandler):
    def post(self, code: str) -> None:
        self.set_status(int(code))
        self.finish({"error": "test", "message": f"status {code}"})


class Busy(web.RequestHandler):
    def post(self) -> None:
        self.set_status(503)
        self.set_header("Retry-After", "1")
        self.finish({"error": "busy", "message": "queue full"})


class Slow(web.RequestHandler):
    async def post(self) -> None:
        await asyncio.sleep(5)
        self.finish({"ok": True})


class Drop(web.RequestHandler):
    def post(self) -> None:
        self.request.connection.stream.close()


arrivals: dict[str, list[float]] = {}
BIG = json.dumps({"rows": [{"i": i, "name": f"row-{i}", "value": i * 0.5} for i in range(2500)]})


class Shard(Echo):
    def post(self) -> None:
        arrivals.setdefault(self.request.headers.get("X-Hubstress-Shard", "-"), []).append(time.time())
        super().post()

    def get(self) -> None:
        self.finish({k: {"n": len(v), "first": v[0], "last": v[-1]} for k, v in arrivals.items()})


class Big(web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(BIG)


class Count(web.RequestHandler):
    def get(self) -> None:
        self.finish(seen)


async def main(port: int) -> None:
    app = web.Application(
        [
            (r"/echo", Echo),
            (r"/stall", Stall),
            (r"/status/(\d+)", Status),
            (r"/busy", Busy),
            (r"/slow", Slow),
            (r"/drop", Drop),
            (r"/count", Count),
            (r"/shard", Shard),
            (r"/big", Big),
        ],
        log_function=lambda h: None,
    )
    app.listen(port, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
