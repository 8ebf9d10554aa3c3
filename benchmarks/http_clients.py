"""Which HTTP stack should drive the load? Each client against the same local Tornado endpoint.

Each client runs alone in its own process (so its CPU time is its own) with 64 requests in
flight for a fixed time against a plain Tornado handler in another process, and reports
completed requests/s and client CPU microseconds per request.

    python benchmarks/http_clients.py [--seconds 5] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from hubstress_ext.http.ports import free_port

CLIENTS = ["aiohttp", "requests+threads", "tornado", "httpx"]


SERVER = """
import asyncio, sys
from tornado import web
class H(web.RequestHandler):
    def get(self):
        self.write({"ok": True})
async def main():
    web.Application([(r"/", H)]).listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()
asyncio.run(main())
"""


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_async_client(kind: str, url: str, seconds: float, conc: int) -> int:
    import asyncio

    done = 0
    stop = time.monotonic() + seconds
    if kind == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def worker():
                nonlocal done
                while time.monotonic() < stop:
                    async with s.get(url) as r:
                        await r.read()
                    done += 1

            await asyncio.gather(*(worker() for _ in range(conc)))
    elif kind == "tornado":
        from tornado.httpclient import AsyncHTTPClient

        AsyncHTTPClient.configure(None, max_clients=conc)
        c = AsyncHTTPClient()

        async def worker():
            nonlocal done
            while time.monotonic() < stop:
                await c.fetch(url)
                done += 1

        await asyncio.gather(*(worker() for _ in range(conc)))
    elif kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(limits=limits) as c:

            async def worker():
                nonlocal done
                while time.monotonic() < stop:
                    (await c.get(url)).read()
                    done += 1

            await asyncio.gather(*(worker() for _ in range(conc)))
    return done


def run_threads(url: str, seconds: float, conc: int) -> int:
    import threading

    import requests
    from requests.adapters import HTTPAdapter

    s = requests.Session()
    s.mount("http://", HTTPAdapter(pool_maxsize=conc))
    counts = [0] * conc
    stop = time.monotonic() + seconds

    def worker(i):
        while time.monotonic() < stop:
            _ = s.get(url).content
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def child(kind: str, url: str, seconds: float, conc: int) -> None:
    import asyncio

    c0, t0 = cpu(), time.monotonic()
    if kind == "requests+threads":
        done = run_threads(url, seconds, conc)
    else:
        done = asyncio.run(run_async_client(kind, url, seconds, conc))
    wall, used = time.monotonic() - t0, cpu() - c0
    print(json.dumps({"client": kind, "requests": done, "rps": done / wall, "cpu_us": used * 1e6 / done}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.seconds, args.concurrency)
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        time.sleep(1.0)
        url = f"http://127.0.0.1:{port}/"
        rows = []
        for kind in CLIENTS:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    kind,
                    "--url",
                    url,
                    "--seconds",
                    str(args.seconds),
                    "--concurrency",
                    str(args.concurrency),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=dict(os.environ),
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        server.terminate()
    base = rows[0]
    print(f"\n{args.concurrency} in flight for {args.seconds:.0f}s against a plain Tornado handler:")
    print(f"{'client':<18}{'req/s':>9}{'CPU us/req':>12}{'rate vs aiohttp':>17}")
    for r in rows:
        print(f"{r['client']:<18}{r['rps']:>9.0f}{r['cpu_us']:>12.0f}{r['rps'] / base['rps']:>16.2f}x")


if __name__ == "__main__":
    main()
