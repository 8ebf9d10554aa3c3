"""Reference: a bare aiohttp loop, 64 coroutines on one session, nothing recorded.

python benchmarks/aiohttp_loop.py URL SECONDS
"""

import asyncio
import sys
import time

import aiohttp


async def main(url: str, seconds: float) -> None:
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            while time.monotonic() < until:
                async with session.post(url, json={"ts": int(time.time() * 1000), "url": "x"}) as r:
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(64)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
