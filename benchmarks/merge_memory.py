"""Peak memory of merging two Qwen2.5-1.5B-architecture models: streamed vs load-both-and-average.

    .venv/bin/python benchmarks/merge_memory.py --work /tmp/merge_bench        # builds, then measures
    .venv/bin/python benchmarks/merge_memory.py --work /tmp/merge_bench --method slerp
    .venv/bin/python benchmarks/merge_memory.py --work /tmp/merge_bench --op merge-lora   # LoRA r=16 into the base

Two random models with Qwen2.5-1.5B's exact shapes (28 layers, hidden 1536, vocab 151,936, bf16,
about 3.1 GB each) are written tensor by tensor into 1 GiB safetensors shards (never a whole model
in memory; the files are reused on later runs). Each approach then runs in its own child process
and the parent reads that child's peak resident memory (``ru_maxrss`` from ``os.wait4``), so the
two numbers are measured the same way in the same run:
- ``stream``: ``llmloop.models.merge.merge_full`` — safetensors shard by shard, tensor by tensor;
- ``naive``: ``AutoModelForCausalLM.from_pretrained`` both models, average the state dicts,
  ``save_pretrained`` — what a script without streaming does.
With ``--op merge-lora`` a random rank-16 LoRA adapter on all attention and MLP projections is
folded into model A by ``merge-lora``'s two engines: ``stream`` vs ``peft`` (``merge_and_unload``).
Both outputs are compared tensor by tensor at the end (they must be equal up to bf16 rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

QWEN25_15B = dict(
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
    num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=True,
    rms_norm_eps=1e-6,
)


def build(out: Path, seed: int, shard_mb: int = 1024) -> None:
    """A random Qwen2.5-1.5B-shaped model, written one tensor at a time (meta-device shapes)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from llmloop.models.weights import ShardWriter, TensorInfo

    if (out / "config.json").exists():
        return
    cfg = Qwen2Config(**QWEN25_15B, dtype="bfloat16")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    params = {n: p for n, p in model.state_dict().items() if n != "lm_head.weight"}  # tied
    tmp = out.with_name(out.name + ".incoming")
    tmp.mkdir(parents=True, exist_ok=True)
    infos = [TensorInfo(n, tuple(p.shape), "BF16") for n, p in params.items()]
    writer = ShardWriter(tmp, infos, shard_mb * 2**20)
    g = torch.Generator().manual_seed(seed)
    for n, p in params.items():
        t = torch.ones(p.shape) if n.endswith("norm.weight") else torch.randn(p.shape, generator=g) * 0.02
        writer.add(n, t.to(torch.bfloat16))
    writer.finish()
    cfg.save_pretrained(tmp)
    tmp.rename(out)


def run_stream(a: str, b: str, out: str, method: str) -> None:
    from llmloop.models.merge import MergeConfig, merge_full

    Path(out).mkdir(parents=True)
    cfg = MergeConfig(models=[a, b], method=method, t=0.5, max_shard_mb=1024, register_version=False)
    merge_full([Path(a), Path(b)], Path(out), cfg)


def run_naive(a: str, b: str, out: str, method: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from llmloop.models.merge import merge_tensors

    ma = AutoModelForCausalLM.from_pretrained(a, dtype=torch.bfloat16)
    mb = AutoModelForCausalLM.from_pretrained(b, dtype=torch.bfloat16)
    sb = mb.state_dict()
    done = set()
    with torch.no_grad():
        for n, p in ma.state_dict().items():
            if p.data_ptr() in done:  # tied lm_head: the embedding, already merged
                continue
            done.add(p.data_ptr())
            p.copy_(merge_tensors(method, [p, sb[n]], [0.5, 0.5], t=0.5).to(p.dtype))
    ma.save_pretrained(out, max_shard_size="1GB")


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_adapter(base: Path, out: Path, r: int = 16) -> None:
    """A random LoRA adapter for ``base`` written straight to safetensors (no model in memory)."""
    import torch
    from safetensors.torch import save_file

    from llmloop.models.weights import WeightReader

    if (out / "adapter_config.json").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    tensors = {}
    for name, info in WeightReader(base).infos.items():
        if name.endswith(".weight") and name.split(".")[-2] in LORA_TARGETS:
            module = name.removesuffix(".weight")
            out_f, in_f = info.shape
            tensors[f"base_model.model.{module}.lora_A.weight"] = (torch.randn(r, in_f, generator=g) * 0.01).to(torch.bfloat16)
            tensors[f"base_model.model.{module}.lora_B.weight"] = (torch.randn(out_f, r, generator=g) * 0.01).to(torch.bfloat16)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
        "target_modules": list(LORA_TARGETS), "base_model_name_or_path": str(base), "bias": "none",
        "fan_in_fan_out": False}), encoding="utf-8")


def run_merge_lora(base: str, adapter: str, out: str, engine: str) -> None:
    from llmloop.models.lora_merge import merge_lora_peft, merge_lora_stream

    Path(out).mkdir(parents=True)
    if engine == "stream":
        merge_lora_stream(Path(base), Path(adapter), Path(out), max_shard_bytes=2**30)
    else:
        merge_lora_peft(Path(base), Path(adapter), Path(out), max_shard_bytes=2**30)


def measure(mode: str, a: Path, b: Path, out: Path, method: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(a), str(b), str(out), method], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode} merge failed (exit {os.waitstatus_to_exitcode(status)})")
    return {"mode": mode, "peak_rss_gib": usage.ru_maxrss / 2**20, "seconds": time.perf_counter() - t0}


def compare(x: Path, y: Path) -> float:
    from llmloop.models.weights import WeightReader

    rx, ry = WeightReader(x), WeightReader(y)
    return max(float((rx.get(n).float() - ry.get(n).float()).abs().max()) for n in rx.names())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/llmloop_merge_bench"), help="folder for the models")
    ap.add_argument("--method", default="linear", choices=["linear", "slerp"], help="merge rule for both approaches")
    ap.add_argument("--op", default="merge", choices=["merge", "merge-lora"], help="two-model merge, or LoRA fold")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, a, b, out, method = args.child
        if mode.startswith("lora-"):
            run_merge_lora(a, b, out, mode.removeprefix("lora-"))
        else:
            (run_stream if mode == "stream" else run_naive)(a, b, out, method)
        return
    a, b = args.work / "qwen2.5-1.5b-random-a", args.work / "qwen2.5-1.5b-random-b"
    t0 = time.perf_counter()
    build(a, 1)
    build(b, 2)
    size = sum(f.stat().st_size for f in a.glob("*.safetensors"))
    print(f"models ready in {time.perf_counter() - t0:.0f} s: {size / 2**30:.2f} GiB each ({len(list(a.glob('*.safetensors')))} shards)")
    if args.op == "merge-lora":
        adapter = args.work / "lora-r16"
        build_adapter(a, adapter)
        res = {}
        for engine in ("stream", "peft"):
            out = args.work / f"merged-lora-{engine}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            res[engine] = measure(f"lora-{engine}", a, adapter, out, "-")
            print(json.dumps(res[engine]))
        diff = compare(args.work / "merged-lora-stream", args.work / "merged-lora-peft")
        s, p = res["stream"], res["peft"]
        print(f"\nLoRA r=16 (all projections) folded into a {size / 2**30:.2f} GiB model:")
        print(f"  stream : peak RSS {s['peak_rss_gib']:.2f} GiB, {s['seconds']:.0f} s")
        print(f"  peft   : peak RSS {p['peak_rss_gib']:.2f} GiB, {p['seconds']:.0f} s (merge_and_unload)")
        print(f"  ratio  : stream uses {s['peak_rss_gib'] / p['peak_rss_gib']:.2f}x peft's peak memory; max |difference| {diff:.2e}")
        return
    results = []
    for mode in ("stream", "naive"):
        out = args.work / f"merged-{mode}-{args.method}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        results.append(measure(mode, a, b, out, args.method))
        print(json.dumps(results[-1]))
    diff = compare(args.work / f"merged-stream-{args.method}", args.work / f"merged-naive-{args.method}")
    s, n = results
    print(f"\nmerge of two {size / 2**30:.2f} GiB models ({args.method}):")
    print(f"  streamed : peak RSS {s['peak_rss_gib']:.2f} GiB, {s['seconds']:.0f} s")
    print(f"  naive    : peak RSS {n['peak_rss_gib']:.2f} GiB, {n['seconds']:.0f} s")
    print(f"  ratio    : streamed uses {s['peak_rss_gib'] / n['peak_rss_gib']:.2f}x the naive peak memory; "
          f"max |difference| between outputs {diff:.2e}")


if __name__ == "__main__":
    main()
