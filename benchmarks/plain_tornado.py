"""The ceiling: a plain Tornado handler that parses the same JSON and answers without batching.

python benchmarks/plain_tornado.py PORT
"""

import asyncio
import json
import sys
import time

from tornado import web

COUNT = {"requests": 0}  # for load_generators.py: requests answered, counted server-side


class Plain(web.RequestHandler):
    def post(self) -> None:
        COUNT["requests"] += 1
        ts = json.loads(self.request.body)["ts"]
        now = int(time.time() * 1000)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"rec_ts": ts, "resp_ts": now, "ts_diff": now - ts}))


class Count(web.RequestHandler):
    def get(self) -> None:
        self.finish(COUNT)


async def main() -> None:
    routes = [(r"/hubstress/batch", Plain), (r"/testB", Plain), (r"/count", Count)]
    web.Application(routes, log_function=lambda h: None).listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
