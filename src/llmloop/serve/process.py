"""``llmloop serve`` as a child process on a free loopback port, against a given workspace.

Used by the demo (the simulated users talk to a real gateway over HTTP) and by tests that need a
process they can kill.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


class GatewayProcess:
    def __init__(self, home: Path, log_path: Path | None = None, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, port: int | None = None,
                 module_args: tuple[str, ...] = ("llmloop.cli.main", "serve", "--log-level", "warning")) -> None:
        """``module_args``: what follows ``python -m`` — any module that serves the gateway's API on
        ``--port`` and answers ``/ready`` (the loop's fault-injecting gateway too); ``extra_args``
        follow the port."""
        self.module_args = module_args
        self.home = Path(home)
        self.log_path = log_path or self.home / "gateway.log"
        self.extra_args = extra_args
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.port = port  # None: a free one, chosen at start (and kept for restarts)
        self.url = ""

    def start(self, timeout: float = 120) -> "GatewayProcess":
        """Start the server and wait until ``/ready`` answers 200; raises with the log's tail if not."""
        if self.port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        port = self.port
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "LLMLOOP_HOME": str(self.home), "PYTHONUNBUFFERED": "1", **self.env}
        cmd = [sys.executable, "-m", *self.module_args, "--port", str(port), *self.extra_args]
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"python -m {self.module_args[0]} exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"python -m {self.module_args[0]} was not ready after {timeout:.0f} s:\n{self._tail()}")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not exit in 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
