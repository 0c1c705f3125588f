"""Time from trigger to canary for N preference pairs: how long the loop takes to turn a week's
feedback into a candidate serving its first canary share.

    OMP_NUM_THREADS=1 python benchmarks/loop_latency.py                       # tiny model, CPU, 1,000 pairs
    python benchmarks/loop_latency.py --arch 0.5b --device cuda               # 0.5B-class shape, random weights, GPU

What is timed (one run of the real controller, ``llmloop.loop.controller``, on a fresh workspace):
trigger check + claims (``collect``), dataset version (``dataset``), DPO on a LoRA adapter from
production (``train``), win rate vs production on held-out prompts (``evaluate``), and the move to
canary stage 1 (``canary``: split written). Votes are synthetic (distinct prompts, a helpful and a
curt answer) and written through the gateway's write path (``store.ingest``, one commit for all of
them); the gateway itself is not involved before the canary.

The comparison printed is the loop against the bare training job it wraps, measured in the same
run: ``loop overhead = total − train`` and ``total / train`` (how much the loop adds to DPO alone).
The goal (issue 8): ≤ 10 minutes on one GPU with a 0.5B-class model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=1000, help="Preference pairs pending at the trigger")
    ap.add_argument("--arch", choices=["tiny", "0.5b"], default="tiny",
                    help="tiny: the demo's 1.3M-parameter model; 0.5b: Qwen2-0.5B's shape (24 layers, width 896, GQA 14/2), random weights")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--gate-prompts", type=int, default=64, help="Held-out prompts the gate generates for, per version")
    ap.add_argument("--epochs", type=float, default=1.0, help="DPO epochs over the pairs")
    ap.add_argument("--batch", type=int, default=8, help="DPO per-device batch size")
    ap.add_argument("--home", type=Path, default=None, help="Workspace (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="Also write the result here")
    a = ap.parse_args()

    import os

    home = a.home or Path(tempfile.mkdtemp(prefix="loop-latency-"))
    os.environ["LLMLOOP_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")

    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.loop.controller import Controller
    from llmloop.loop.policy import LoopPolicy
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model
    from llmloop.store import loop_events, open_database, registry
    from llmloop.store.ingest import BattleOp, VoteOp, ingest_now

    shape = {} if a.arch == "tiny" else dict(vocab_size=32000, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                             num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=2048)
    t = time.monotonic()
    model_dir = build_tiny_model(home / "models" / f"{a.arch}-base", TinyModelConfig(**shape))
    build_s = time.monotonic() - t
    n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    db = open_database()
    registry.register(db, name="v1.0", kind="chat", base_model=str(model_dir))
    registry.set_alias(db, "production", "v1.0")

    helpful = "You can follow it under My Orders. Is there anything else I can help you with?"
    curt = "Check My Orders."
    feedback = []
    for i in range(a.pairs):
        msgs = [{"role": "user", "content": f"Where is my order number {i}?"}]
        feedback += [BattleOp(f"b{i}", f"u{i % 50}", msgs, ((f"r{i}a", "v1.0", helpful + f" (#{i})"), (f"r{i}b", "v1.0", curt))),
                     VoteOp(f"b{i}", f"u{i % 50}", "a")]
    (stored,) = ingest_now(db, [feedback])
    if isinstance(stored, Exception):
        sys.exit(f"the synthetic votes were refused: {stored}")
    prompts = home / "heldout.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"Has my parcel {i} left the warehouse?"}) for i in range(a.gate_prompts)))

    policy = LoopPolicy.model_validate({
        "trigger": {"min_new_pairs": a.pairs, "poll_seconds": 0.1},
        "train": {"config": {"finetuning": "lora", "learning_rate": 1e-3, "num_train_epochs": a.epochs,
                             "per_device_train_batch_size": a.batch, "max_length": 128, "logging_steps": 10,
                             "plot_loss": False, "save_strategy": "no"}},
        "gate": {"prompts": str(prompts), "judge": "python:llmloop.demo.users:preference_score", "max_tokens": 48,
                 "min_win_rate": 0.0, "min_ci_low": 0.0},
        # the canary's first move is what is timed; the gateway URL is never read before it
        "rollout": {"gateways": ["http://127.0.0.1:9"], "stages": [{"percent": 5, "min_requests": 10**9}]},
    })
    ctl = Controller(db, policy, EmbeddedEngine(device=device))
    t0 = time.monotonic()
    while loop_events.get_state(db).phase != "canary":
        r = ctl.tick(force=True)
        if r.action in ("rejected", "failed", "waiting"):
            sys.exit(f"the round did not reach the canary: {r}")
    total = time.monotonic() - t0
    phases = {k: round(v, 2) for k, v in ctl.timings.items()}
    train = ctl.timings.get("train", float("nan"))
    result = {"arch": a.arch, "parameters": n_params, "device": device,
              "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, "pairs": a.pairs,
              "gate_prompts": a.gate_prompts, "epochs": a.epochs, "torch_threads": torch.get_num_threads(),
              "trigger_to_canary_s": round(total, 2), "phases_s": phases, "build_model_s": round(build_s, 2),
              "loop_overhead_s": round(total - train, 2), "total_over_train": round(total / train, 3)}
    print(json.dumps(result, indent=2))
    print(f"\ntrigger → canary for {a.pairs} pairs ({a.arch}, {n_params / 1e6:.1f} M parameters, {device}): "
          f"{total:.1f} s; DPO alone {train:.1f} s; the loop adds {total - train:.1f} s ({total / train:.2f}× the training job)")
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
