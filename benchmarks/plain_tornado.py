"""The ceiling: a plain Tornado handler that parses the same JSON and answers without batching.

It parses and encodes with the endpoint's own functions (strict JSON through the same prebuilt
decoder and encoder), so the ratio to it measures batching's own cost, not a JSON difference.

python benchmarks/plain_tornado.py PORT
"""

import asyncio
import sys
import time

from tornado import web

from hubstress_ext.batching.handlers import encode_json, parse_json

COUNT = {"requests": 0}  # for load_generators.py: requests answered, counted server-side


class Plain(web.RequestHandler):
    def post(self) -> None:
        COUNT["requests"] += 1
        ts = parse_json(self.request.body)["ts"]
        now = int(time.time() * 1000)
        self.set_header("Content-Type", "application/json")
        self.finish(encode_json({"rec_ts": ts, "resp_ts": now, "ts_diff": now - ts}))


class Count(web.RequestHandler):
    def get(self) -> None:
        self.finish(COUNT)


async def main() -> None:
    routes = [(r"/hubstress/batch", Plain), (r"/testB", Plain), (r"/count", Count)]
    web.Application(routes, log_function=lambda h: None).listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
