"""Where llmloop's SFT step loses MFU on a GPU: the engine's trainer (b) under a few switches, one run.

    python benchmarks/sft_mfu_sweep.py --out results/      # CUDA GPU; model and data of train_throughput.py

Each variant builds ``llmloop.train.sft.build_trainer`` (the trainer every SFT job runs) on the
random Qwen2.5-1.5B-architecture model of ``benchmarks/train_throughput.py`` and times optimizer
steps after ``--warmup`` steps with CUDA synchronisation (steady state, the usual MFU window; the
end-to-end numbers, loading and packing included, are train_throughput.py's). For each variant it
prints tokens/s, MFU (LoRA FLOPs over the datasheet peak), the share of the timed wall clock the
GPU spent running kernels (CUPTI trace of two steps, union of kernel intervals: a low share means
the host, not the GPU, sets the pace) and the trace's top kernels by time (where the rest goes).

Switches: ``batch`` (packed rows of max_length per step), ``cast`` (PEFT's fp32 cast of every LoRA
layer's input, on in PEFT, off by default in llmloop since issue 16: ``speed.lora_input_cast``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as tt  # noqa: E402  (the model, data and FLOP counts of the main benchmark)

VARIANTS = {
    "cast-b8": dict(batch=8, cast=True),
    "b8": dict(batch=8, cast=False),
    "b16": dict(batch=16, cast=False),
    "b24": dict(batch=24, cast=False),
    "cast-b16": dict(batch=16, cast=True),
    "cast-b12": dict(batch=12, cast=True),  # the most rows with the cast that fit an H100's 80 GB (b16: 82.7 GiB)
    "b12": dict(batch=12, cast=False),
}


def build(model_dir: Path, rows: list[dict], out: Path, batch: int, cast: bool):  # noqa: ANN201
    """train_throughput.py's (b) trainer with this variant's batch and LoRA input cast."""
    return tt.run_sft("b", model_dir, rows, out, per_device_train_batch_size=batch, logging_steps=1000,
                      speed={"lora_input_cast": cast, "auto_find_batch_size": False})


def busy_share(prof, wall: float) -> float:  # noqa: ANN001
    """Fraction of ``wall`` seconds during which some CUDA kernel ran (union of the trace's kernel intervals)."""
    import torch

    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == torch.autograd.DeviceType.CUDA)
    busy, end = 0.0, float("-inf")
    for s, e in spans:
        if e <= end:
            continue
        busy += e - max(s, end)
        end = e
    return busy / 1e6 / wall  # the trace is in microseconds


def run_variant(name: str, opts: dict, model_dir: Path, rows: list[dict], cfg, peak: float, tmp: Path,  # noqa: ANN001
                warmup: int, steps: int) -> dict:
    """Time steps warmup+1 .. warmup+steps of ``trainer.train()``, then trace two more steps' kernels."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    trainer = build(model_dir, rows, tmp / name, **opts)
    trainer.args.max_steps = warmup + steps + 2
    marks: dict[str, float] = {}
    prof = profile(activities=[ProfilerActivity.CUDA])

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN202
            if state.global_step in (warmup, warmup + steps, warmup + steps + 2):
                torch.cuda.synchronize()
                marks[f"t{state.global_step}"] = time.perf_counter()
                marks[f"n{state.global_step}"] = state.num_input_tokens_seen
            if state.global_step == warmup + steps:
                prof.start()
            if state.global_step == warmup + steps + 2:
                prof.stop()

    trainer.add_callback(Clock())
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    a, b, c = warmup, warmup + steps, warmup + steps + 2
    seconds = marks[f"t{b}"] - marks[f"t{a}"]
    tokens = marks[f"n{b}"] - marks[f"n{a}"]
    busy = busy_share(prof, marks[f"t{c}"] - marks[f"t{b}"])
    # Every token of a packed step is a real token; the attention FLOPs need example lengths: use the
    # packed dataset's mean example length.
    ds = trainer.train_dataset
    seqs = [n for row in ds["seq_lengths"] for n in row] if "seq_lengths" in ds.column_names else [len(r) for r in ds["input_ids"]]
    mean_len = max(1, round(sum(seqs) / len(seqs)))
    per_token = tt.work(cfg, [mean_len])[0] / mean_len
    kernels = tt.top_kernels(prof, 12)
    result = {"variant": name, **opts, "steps": steps, "tokens_per_step": int(tokens // steps),
              "tokens_per_s": round(tokens / seconds), "step_s": round(seconds / steps, 4),
              "mfu_lora": round(per_token * tokens / seconds / peak, 4), "gpu_busy": round(busy, 3),
              "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1), "top_kernels": kernels}
    del trainer  # the trace goes with this frame
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="2-layer model (checks the code path)")
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()

    import torch

    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in tt.PEAK_BF16.items() if all(w in name for w in k.split())), 989.4e12)
    cfg = tt.qwen15b_config(opts.quick)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = tmp / "model"
        tt.build_model_dir(model_dir, opts.quick)
        rows = tt.sft_data(800)
        for variant in opts.variants.split(","):
            try:
                r = run_variant(variant, VARIANTS[variant], model_dir, rows, cfg, peak, tmp, opts.warmup, opts.steps)
            except Exception:  # noqa: BLE001 - report and go on with the next variant
                traceback.print_exc()
                r = {"variant": variant, "error": traceback.format_exc(limit=1).strip()[-300:]}
                gc.collect()
                torch.cuda.empty_cache()
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "top_kernels"}), flush=True)
            if "top_kernels" in r:
                print(f"{variant}: CUDA kernels of 2 steps, share of kernel time\n{r['top_kernels']}", flush=True)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "sft_mfu_sweep.json").write_text(json.dumps({"device": name, "results": results}, indent=2))
    print(f"\n{name}\nvariant   tokens/step  tokens/s   MFU(LoRA)  GPU busy  peak GiB")
    for r in results:
        if "error" in r:
            print(f"{r['variant']:9} failed: {r['error']}")
        else:
            print(f"{r['variant']:9} {r['tokens_per_step']:11} {r['tokens_per_s']:9} {r['mfu_lora']:10.1%} "
                  f"{r['gpu_busy']:9.0%} {r['peak_mem_gib']:9.1f}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["LLMLOOP_JOB_PROCESS"] = "1"  # Liger on, as in a job's own process
    main()
