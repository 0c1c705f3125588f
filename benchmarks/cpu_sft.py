"""SFT on a CPU: TRL's fused LM head as TRL runs it there vs as llmloop runs it, same run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/cpu_sft.py

The demo's SFT (the tiny offline model, the shipped instructions, the demo's config: full
fine-tuning, 3 epochs, batch 16, assistant-only loss) trained twice, each in a process of its own:

(a) TRL as it ships: its fused LM head (``trl.kernels.chunked_logprob``) scores every position on a
    device without Triton — prompt and padding too — because XLA devices would recompile for every
    new number of positions;
(b) llmloop: the same trainer after ``llmloop.train.speed.plan``, which makes the head score only
    the labelled positions on a CPU as TRL does on a GPU.

Prints seconds of ``trainer.train()``, the ratio, and how far apart the logged losses are (the same
math, summed in another order: they agree to about 1e-5).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, sys, tempfile, time
from pathlib import Path
import trl.trainer.utils as trl_utils
from datasets import Dataset
from llmloop.demo.demo_loop import DemoConfig
from llmloop.models.tiny import build_tiny_model
from llmloop.resources import demo_file
from llmloop.train import sft, speed
from llmloop.train.recipe_base import StartingModel
from llmloop.train.config import SFTConfig

if sys.argv[1] == "a":  # TRL's own decision: every plan() would otherwise compact on the CPU
    speed.score_labelled_positions_only_on_cpu = lambda: None
base = build_tiny_model(Path(tempfile.mkdtemp()) / "model")
rows = [{"messages": json.loads(line)["messages"]}
        for line in demo_file("sft.jsonl").read_text().splitlines() if line.strip()]
config = SFTConfig.model_validate({**DemoConfig().sft, "model": str(base), "dataset": "demo-sft", "seed": 0,
                                   "plot_loss": False})
trainer = sft.build_trainer(config, StartingModel(str(base), str(base)), Dataset.from_list(rows),
                            Path(tempfile.mkdtemp()), [])
compact = trl_utils._use_triton(__import__("torch").device("cpu"))
began = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - began
losses = [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h]
print("RESULT " + json.dumps({"variant": sys.argv[1], "compact": compact, "seconds": round(seconds, 1),
                              "steps": trainer.state.global_step, "losses": losses}))
'''


def run(variant: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, variant], capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    a, b = run("a"), run("b")
    print(f"(a) TRL as shipped   : {a['seconds']:6.1f} s for {a['steps']} steps (scores every position: {not a['compact']})")
    print(f"(b) llmloop          : {b['seconds']:6.1f} s for {b['steps']} steps (labelled positions only: {b['compact']})")
    print(f"speed-up (a)/(b)     : {a['seconds'] / b['seconds']:.2f}x")
    gap = max(abs(x - y) for x, y in zip(a["losses"], b["losses"], strict=True))
    print(f"logged losses        : {len(b['losses'])} each, largest difference {gap:.1e} "
          f"(summation order; first {b['losses'][:2]}, last {b['losses'][-2:]})")


if __name__ == "__main__":
    main()
