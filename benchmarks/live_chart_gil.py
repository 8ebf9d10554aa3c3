"""Why the notebook's live chart is drawn in a helper process.

An open-loop bench at 300 req/s against a local plain Tornado endpoint, three times: with no
chart, with a chart drawn every second in this process (as a naive live view would), and with
the live view's helper-process renderer. Reports the generator's scheduler lag and latency.

    python benchmarks/live_chart_gil.py
"""

import sys
import threading

import numpy as np
import pandas as pd
from batching import free_port, start, stop

from hubstress_ext.loadgen.options import LoadOptions
from hubstress_ext.loadgen.run import BenchRun
from hubstress_ext.notebook.live import render
from hubstress_ext.results import charts


def bench(url: str, draw) -> dict:
    run = BenchRun(LoadOptions(url=url, rate=300, duration=5).resolve())
    done = threading.Event()

    def drawing() -> None:
        while not done.wait(1.0):
            if draw is not None:
                draw()

    thread = threading.Thread(target=drawing)
    thread.start()
    run.execute()
    done.set()
    thread.join()
    return {k: run.stats[k] for k in ("scheduler_lag_p99_ms", "p50_ms", "p99_ms", "generator_behind")}


def main() -> None:
    timeline = pd.DataFrame(
        {"t": np.arange(10.0), "qps": np.full(10, 300.0), "errors_per_s": 0.0, "p50_ms": 1.5, "p99_ms": 2.5}
    )
    render("bench", timeline)  # start the helper process before measuring
    port = free_port()
    server = start([sys.executable, "benchmarks/plain_tornado.py", str(port)], port)
    url = f"http://127.0.0.1:{port}/hubstress/batch"
    try:
        rows = {
            "no chart": bench(url, None),
            "chart drawn in-process": bench(url, lambda: charts.to_png(charts.bench_figure(timeline))),
            "chart in the helper process": bench(url, lambda: render("bench", timeline)),
        }
    finally:
        stop(server)
    print(pd.DataFrame(rows).T.to_string())


if __name__ == "__main__":
    main()
