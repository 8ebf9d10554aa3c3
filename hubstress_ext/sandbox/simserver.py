"""The shared stand-in for every simulated single-user server: answers any path with 200."""

from __future__ import annotations

import argparse
import asyncio
import json

from tornado import web


class AnyPath(web.RequestHandler):
    def _answer(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"simulated": True, "path": self.request.path}))

    get = post = put = patch = delete = head = lambda self, *a: self._answer()  # noqa: E731


def make_app() -> web.Application:
    return web.Application([(r"/.*", AnyPath)], log_function=lambda handler: None)


async def serve(port: int) -> None:
    make_app().listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
