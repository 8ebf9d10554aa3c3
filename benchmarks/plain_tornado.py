"""The ceiling: a plain Tornado handler that parses the same JSON and answers without batching.

python benchmarks/plain_tornado.py PORT
"""

import asyncio
import json
import sys
import time

from tornado import web


class Plain(web.RequestHandler):
    def post(self) -> None:
        ts = json.loads(self.request.body)["ts"]
        now = int(time.time() * 1000)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"rec_ts": ts, "resp_ts": now, "ts_diff": now - ts}))


async def main() -> None:
    web.Application([(r"/hubstress/batch", Plain), (r"/testB", Plain)], log_function=lambda h: None).listen(
        int(sys.argv[1]), "127.0.0.1"
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
