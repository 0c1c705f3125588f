"""The GPU benchmarks' code paths run where CI runs (no GPU): serve_gpu.py's CPU smoke serves every
variant and the multi-LoRA part (with its profile) without an error; the training benchmarks parse their flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: int = 300) -> str:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, text=True, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_serve_gpu_smoke_serves_every_variant():
    out = _run("benchmarks/serve_gpu.py", "--smoke", "--lora-profile")
    for label in ("1 adapter", "2 adapters"):  # --lora-profile's lines, e.g. "... CUDA kernels per new token"
        assert f"profile, peft mixed batch, {label}: " in out and "aten::mm" in out, out[-2000:]
    table = out[out.index("variant ") :]
    for name in ("engine ", "engine-serial", "hf-generate", "hf-cb", "engine chat, 2 adapters", "peft mixed batch"):
        assert name in table, table
    assert "failed" not in table
    rows = [line.split() for line in table.splitlines()[1:] if line.startswith(("engine", "hf-"))]
    assert all(row[-1] == "0" for row in rows), table  # no request failed


def test_training_benchmarks_parse_their_flags():
    assert "--expert-attn" in _run("benchmarks/train_throughput.py", "--help")
    assert "--variants" in _run("benchmarks/sft_mfu_sweep.py", "--help")
