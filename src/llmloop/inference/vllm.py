"""``llmloop serve --engine vllm``: start ``vllm serve`` with LoRA enabled as a child process and use
it as the upstream. The command is a template (``ServeConfig.vllm_command``) so that a deployment
can add flags (``--tensor-parallel-size``, ``--gpu-memory-utilization`` …) and tests can start any
vLLM-compatible server (another llmloop gateway) in its place. vLLM's run-time adapter API needs
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` in its environment; the launcher sets it.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmLauncher:
    def __init__(self, command: str, *, model: str, port: int = 0, max_lora_rank: int = 64, max_loras: int = 4,
                 served_model_name: str = "base", log_path: Path | None = None, start_timeout: float = 900) -> None:
        self.port = port or free_port()
        self.argv = shlex.split(command.format(model=shlex.quote(model), port=self.port, max_lora_rank=max_lora_rank,
                                               max_loras=max_loras, served_model_name=shlex.quote(served_model_name)))
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> VllmLauncher:
        """Start (or restart) the upstream and wait until its ``/health`` answers 200."""
        self.stop()
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the upstream command exited with {self.proc.returncode}: {shlex.join(self.argv)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the upstream did not answer /health within {self.start_timeout:.0f} s: {shlex.join(self.argv)}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
