"""EndpointProcess: ``hubstress serve`` in a child process on a free loopback port.

For notebooks and examples that need an endpoint to measure without a terminal of their own:

    with EndpointProcess("--model", "mlp", "--batch-size", "8") as endpoint:
        %hubstress sweep {endpoint.url} --workers 4,16 --batch-size 1,8
"""

from __future__ import annotations

import subprocess
import sys
import threading

from hubstress_ext.http.ports import free_port

READY = "batching endpoint on"


class EndpointProcess:
    def __init__(self, *serve_args: str, port: int | None = None, start_timeout: float = 30.0) -> None:
        self.serve_args = list(serve_args)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hubstress/batch"

    def start(self) -> EndpointProcess:
        cmd = [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(self.port), *self.serve_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if not first or READY not in first[0]:
            output = first[0] if first else ""
            self.stop()
            raise RuntimeError(f"hubstress serve did not start: {output.strip() or 'no answer'}")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> EndpointProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"<EndpointProcess {self.url} {state}>"
