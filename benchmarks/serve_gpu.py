"""GPU serving: the embedded engine vs plain transformers generate vs transformers' continuous batching, same run.

    python benchmarks/serve_gpu.py --out results/      # one CUDA GPU: 0.5B-class model, 1/8/64 clients
    python benchmarks/serve_gpu.py --smoke             # a tiny model on the CPU: checks the code paths

Model: a randomly initialised Qwen2.5-0.5B-architecture model (24 layers, width 896, GQA 14/2, vocab
151,936, tied embeddings), bf16, with a word-level tokenizer built here (one word = one token) and a
plain chat template. EOS is a token the random model practically never picks, so every answer runs
to ``--max-tokens``. Prompts: log-normal lengths (median 200 words, cap 1,000). Greedy decoding.

N clients (``--clients``, default 1,8,64) start together; each sends ``--rounds`` streaming requests one
after another. Per variant and N: generated tokens/s over the wall clock, time to first token (TTFT)
p50/p99 over all requests. A warm-up round (8 new tokens) of the same shape runs first, untimed.

- ``engine``: ``EmbeddedEngine.chat_stream`` as the gateway calls it, continuous batching on (the GPU
  default: inference/continuous.py wraps transformers' ``ContinuousBatchingManager``, paged KV cache).
- ``engine-serial``: the same engine with ``continuous_batching="off"``: each stream holds the
  engine's lock from first to last token (the path before this benchmark); N > 8 is skipped by
  default (a stream waits for every stream before it: ~N times one stream).
- ``hf-generate``: plain ``model.generate`` with the round's N requests as one left-padded batch
  (static batching at its best: all requests of a round arrive together); TTFT = the first decode step.
- ``hf-cb``: transformers' ``init_continuous_batching`` manager driven directly (``add_request(...,
  streaming=True)``), the engine's wrapper left out.

Multi-LoRA (``--lora``): 8 LoRA adapters (r 16, every linear layer) loaded as 8 versions on the
one base; 64 concurrent ``chat`` requests (the engine's batching thread, which serves the queued
requests of every adapter on one base as one mixed-adapter batch) all for one adapter vs 8 each for
8 adapters, with the generate calls that served them; and PEFT's mixed-adapter batch
(``generate(adapter_names=...)``) for the same 64 requests as one batch, driven directly, for reference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import random
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VARIANTS = ("engine", "engine-serial", "hf-generate", "hf-cb")
SPECIAL = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def shape(smoke: bool) -> dict:
    if smoke:
        return dict(vocab_size=2000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2)
    return dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2)


def build_model(path: Path, smoke: bool, device: str) -> None:
    """Random Qwen2.5-0.5B-shaped weights + a word-level tokenizer covering its vocabulary, in ``path``."""
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    dims = shape(smoke)
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    vocab.update({f"w{i}": i + len(SPECIAL) for i in range(dims["vocab_size"] - len(SPECIAL))})
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.chat_template = TEMPLATE
    eos = vocab["<eos>"]
    cfg = Qwen2Config(**dims, max_position_embeddings=4096, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True,
                      bos_token_id=None, eos_token_id=eos, pad_token_id=vocab["<pad>"])
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32)
    with torch.no_grad():  # the random model must (practically) never end early: answers run to max tokens
        model.lm_head.weight[eos] = 0  # tied: the embedding row of <eos> too; its logit is 0 vs O(1) others
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=vocab["<pad>"], do_sample=False)
    model.save_pretrained(path)
    fast.save_pretrained(path)


def build_adapters(base: Path, out: Path, n: int) -> list[Path]:
    """``n`` random LoRA adapters (r 16, every linear layer), non-zero so each changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for i in range(n):
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_pretrained(base)
        peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
        path = out / f"adapter{i}"
        peft.save_pretrained(path)
        paths.append(path)
        del model, peft
    return paths


def prompts(n: int, seed: int, smoke: bool) -> list[str]:
    rng = random.Random(seed)
    words = shape(smoke)["vocab_size"] - len(SPECIAL)
    cap = 60 if smoke else 1000
    median = 20 if smoke else 200
    return [" ".join(f"w{rng.randrange(words)}" for _ in range(max(4, min(cap, int(rng.lognormvariate(math.log(median), 0.8))))))
            for _ in range(n)]


def tokenizer(path: Path):  # noqa: ANN201
    """The word-level tokenizer saved beside the model. Not AutoTokenizer: next to a qwen2 config.json it
    builds Qwen2's byte-level BPE class from the vocabulary, which encodes every word to nothing."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(path)
    tok.padding_side = "left"
    return tok


def version(name: str, base: Path, adapter: Path | None = None):  # noqa: ANN201
    from llmloop.store.records import ModelVersion

    return ModelVersion(name=name, kind="chat", base_model=str(base), adapter_path=str(adapter) if adapter else None,
                        parent=None, job_id=None, dataset_versions=[], metrics={}, stage="candidate", note="",
                        created_at=dt.datetime.now(dt.timezone.utc))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))] if values else float("nan")


def clients(n: int, rounds: int, texts: list[str], one) -> dict:  # noqa: ANN001
    """N threads, started together, client i calling ``one(text, i) -> (ttft_s, tokens)`` ``rounds`` times."""
    barrier = threading.Barrier(n + 1)
    ttfts: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        barrier.wait()
        for r in range(rounds):
            try:
                ttft, k = one(texts[(i * rounds + r) % len(texts)], i)
            except Exception as e:  # noqa: BLE001 - counted, reported
                with lock:
                    errors.append(repr(e)[:200])
                continue
            with lock:
                ttfts.append(ttft)
                tokens[0] += k

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    return {"clients": n, "requests": len(ttfts), "tokens": tokens[0], "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens[0] / wall, 1), "ttft_p50_ms": round(pct(ttfts, 0.5) * 1e3, 1),
            "ttft_p99_ms": round(pct(ttfts, 0.99) * 1e3, 1), "errors": errors[:3], "n_errors": len(errors)}


def engine_stream(engine, max_tokens: int):  # noqa: ANN001, ANN201
    from llmloop.inference.base import SamplingParams, StreamResult

    params = SamplingParams(max_tokens=max_tokens, temperature=0)

    def one(text: str, i: int = 0) -> tuple[float, int]:
        t0 = time.perf_counter()
        ttft = None
        result = StreamResult()
        for _ in engine.chat_stream("base", [{"role": "user", "content": text}], params, result):
            if ttft is None:
                ttft = time.perf_counter() - t0
        return (ttft if ttft is not None else time.perf_counter() - t0), result.completion_tokens

    return one


class StaticBatches:
    """hf-generate: the requests waiting when a batch starts are generated as one left-padded batch."""

    def __init__(self, model, tok, max_tokens: int) -> None:  # noqa: ANN001
        self.model, self.tok, self.max_tokens = model, tok, max_tokens
        self.cond = threading.Condition()
        self.waiting: list[dict] = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        import torch
        from transformers.generation.streamers import BaseStreamer

        while True:
            with self.cond:
                while not self.waiting:
                    self.cond.wait()
                time.sleep(0.002)  # let the rest of a simultaneous wave arrive
                batch, self.waiting = self.waiting, []
            texts = [self.tok.apply_chat_template([{"role": "user", "content": r["text"]}], tokenize=False,
                                                  add_generation_prompt=True) for r in batch]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)

            class First(BaseStreamer):
                calls = 0

                def put(self, value):  # noqa: ANN001, ANN202
                    First.calls += 1
                    if First.calls == 2:  # the first call is the prompt
                        now = time.perf_counter()
                        for r in batch:
                            r["first"] = now

                def end(self):  # noqa: ANN202
                    pass

            try:
                with torch.inference_mode():
                    out = self.model.generate(**enc, max_new_tokens=self.max_tokens, do_sample=False, streamer=First(),
                                              pad_token_id=self.tok.pad_token_id)
                new = out.shape[1] - enc["input_ids"].shape[1]
                for r in batch:
                    r["tokens"] = new
            except Exception as e:  # noqa: BLE001
                for r in batch:
                    r["error"] = e
            for r in batch:
                r["done"].set()

    def one(self, text: str, i: int = 0) -> tuple[float, int]:
        r = {"text": text, "done": threading.Event(), "t0": time.perf_counter()}
        with self.cond:
            self.waiting.append(r)
            self.cond.notify()
        r["done"].wait()
        if "error" in r:
            raise r["error"]
        return r.get("first", time.perf_counter()) - r["t0"], r["tokens"]


class RawContinuous:
    """hf-cb: transformers' continuous-batching manager, requests streamed, one router thread."""

    def __init__(self, model, tok, max_tokens: int, memory: float) -> None:  # noqa: ANN001
        import queue

        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        self.tok, self.max_tokens = tok, max_tokens
        eos = model.generation_config.eos_token_id
        config = GenerationConfig(do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id, max_new_tokens=max_tokens)
        self.manager = model.init_continuous_batching(
            generation_config=config, continuous_batching_config=ContinuousBatchingConfig(max_memory_percent=memory))
        self.manager.start()
        self.routes: dict[str, queue.Queue] = {}
        self.lock = threading.Lock()
        self.count = 0
        self.queue_type, self.empty = queue.Queue, queue.Empty
        threading.Thread(target=self._route, daemon=True).start()

    def _route(self) -> None:
        while self.manager.is_running():
            out = self.manager.get_result(timeout=0.1)
            if out is not None:
                with self.lock:
                    q = self.routes.get(out.request_id)
                if q is not None:
                    q.put(out)

    def one(self, text: str, i: int = 0) -> tuple[float, int]:
        t0 = time.perf_counter()
        ids = self.tok(self.tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                    add_generation_prompt=True), add_special_tokens=False)["input_ids"]
        with self.lock:
            self.count += 1
            rid = f"r{self.count}"
            q = self.routes[rid] = self.queue_type()
        self.manager.add_request(input_ids=ids, request_id=rid, max_new_tokens=self.max_tokens, streaming=True)
        ttft = None
        while True:
            try:
                out = q.get(timeout=1)
            except self.empty:
                if not self.manager.is_running():
                    raise RuntimeError("the continuous-batching generation thread stopped") from None
                continue
            if out.error:
                raise RuntimeError(out.error)
            if ttft is None and out.generated_tokens:
                ttft = time.perf_counter() - t0
            if out.is_finished():
                with self.lock:
                    self.routes.pop(rid, None)
                return ttft, len(out.generated_tokens)

    def close(self) -> None:
        self.manager.stop(block=True, timeout=10)
        self.manager.destroy()


def free_gpu() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_variant(name: str, model_dir: Path, counts: list[int], opts, texts: list[str], device: str) -> list[dict]:  # noqa: ANN001
    import torch
    from transformers import AutoModelForCausalLM

    rows = []
    closer = None
    if name.startswith("engine"):
        from llmloop.inference.embedded import EmbeddedEngine

        engine = EmbeddedEngine(device=device, continuous_batching="off" if name == "engine-serial" else "on")
        engine.load(version("base", model_dir))
        engine._bases[str(model_dir)].tokenizer = tokenizer(model_dir)  # see tokenizer()
        one, warm = engine_stream(engine, opts.max_tokens), engine_stream(engine, 8)

        def closer() -> None:  # noqa: F811
            for s in engine._streams.values():
                s.close()
    else:
        tok = tokenizer(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if device == "cuda" else torch.float32,
                                                     use_kernels=False).to(device).eval()
        if name == "hf-generate":
            runner, warm_runner = StaticBatches(model, tok, opts.max_tokens), StaticBatches(model, tok, 8)
        else:
            runner = RawContinuous(model, tok, opts.max_tokens, opts.cache_memory)
            warm_runner = runner
            closer = runner.close
        one, warm = runner.one, (warm_runner.one if warm_runner is not runner else runner.one)
    try:
        for n in counts:
            if name == "engine-serial" and n > opts.serial_max_clients:
                rows.append({"variant": name, "clients": n, "skipped": f"serialised: about {n}x one stream"})
                continue
            clients(n, 1, texts[::-1], warm)  # warm-up of the same shape, untimed
            r = {"variant": name, **clients(n, opts.rounds, texts, one)}
            rows.append(r)
            print(json.dumps(r), flush=True)
    finally:
        if closer:
            closer()
    return rows


def run_lora(model_dir: Path, adapters: list[Path], opts, texts: list[str], device: str) -> list[dict]:  # noqa: ANN001
    """64 concurrent chat requests: one adapter vs 8 adapters (engine), and PEFT's mixed-adapter batch."""
    import torch

    from llmloop.inference.base import SamplingParams
    from llmloop.inference.embedded import EmbeddedEngine

    engine = EmbeddedEngine(device=device, merge_adapters="never")  # the GPU default; the CPU smoke would merge
    for i, a in enumerate(adapters):
        engine.load(version(f"lora{i}", model_dir, a))
    engine._bases[str(model_dir)].tokenizer = tokenizer(model_dir)  # see tokenizer()
    params = SamplingParams(max_tokens=opts.max_tokens, temperature=0)
    n = opts.lora_clients
    rows = []
    for label, names in (("1 adapter", ["lora0"] * n), (f"{len(adapters)} adapters", [f"lora{i % len(adapters)}" for i in range(n)])):
        def one(text: str, i: int, names=names) -> tuple[float, int]:
            t0 = time.perf_counter()
            gen = engine.chat(names[i], [{"role": "user", "content": text}], params)[0]
            return time.perf_counter() - t0, gen.completion_tokens

        clients(n, 1, texts[::-1], one)  # warm-up
        before = dict(engine.stats)
        r = {"variant": f"engine chat, {label}", **clients(n, 1, texts, one)}
        r["ttft_note"] = "non-streaming: latency of the whole answer"
        r["generate_calls"] = engine.stats["chat_batches"] - before["chat_batches"]
        r["mixed_adapter_batches"] = engine.stats["mixed_batches"] - before["mixed_batches"]
        rows.append(r)
        print(json.dumps(r), flush=True)
    # PEFT's mixed-adapter batch: the same 64 requests as one generate with a per-row adapter
    base = engine._bases[str(model_dir)]
    tok = base.tokenizer
    enc = tok([tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
               for t in texts[:n]], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    names = [f"v_lora{i % len(adapters)}" for i in range(n)]

    def mixed(adapter_names: list[str], new_tokens: int, rows_: int = n) -> tuple[float, int]:
        with torch.inference_mode():
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = base.model.generate(**{k: v[:rows_] for k, v in enc.items()}, max_new_tokens=new_tokens, do_sample=False,
                                      adapter_names=adapter_names[:rows_], pad_token_id=tok.pad_token_id)
            if device == "cuda":
                torch.cuda.synchronize()
        return time.perf_counter() - t0, (out.shape[1] - enc["input_ids"].shape[1]) * rows_

    runs = (("1 adapter", ["v_lora0"] * n), (f"{len(adapters)} adapters", names))
    for label, adapter_names in runs:
        mixed(adapter_names, 4, 2)  # warm-up
        wall, tokens = mixed(adapter_names, opts.max_tokens)
        r = {"variant": f"peft mixed batch, {label}", "clients": n, "tokens": tokens, "wall_s": round(wall, 2),
             "tokens_per_s": round(tokens / wall, 1)}
        rows.append(r)
        print(json.dumps(r), flush=True)
    if opts.lora_profile:  # why 8 adapters cost what they cost: kernels per decode step, GPU busy share, host ops
        from torch.profiler import ProfilerActivity, profile

        from sft_mfu_sweep import busy_share

        steps = 3  # the trace of 8 adapters is large: its analysis takes minutes on the host
        for label, adapter_names in runs:
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                wall, _ = mixed(adapter_names, steps)
            kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
            print(f"profile, peft mixed batch, {label}: {kernels / steps:.0f} CUDA kernels per new token (prefill "
                  f"included), {wall / steps * 1000:.1f} ms per new token, GPU busy {busy_share(prof, wall):.0%}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=40))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="Tiny model on the CPU, 1 and 4 clients: checks the code paths")
    ap.add_argument("--clients", default=None, help="Concurrent streaming clients, comma-separated (default 1,8,64; --smoke: 1,4)")
    ap.add_argument("--rounds", type=int, default=2, help="Requests each client sends one after another")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="New tokens per answer (every answer runs to it; default 128, --smoke: 8)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; empty: only the multi-LoRA part")
    ap.add_argument("--serial-max-clients", type=int, default=8, help="engine-serial runs only up to this many clients")
    ap.add_argument("--cache-memory", type=float, default=0.3,
                    help="hf-cb's share of free GPU memory for its KV cache (the engine's: inference/continuous.py)")
    ap.add_argument("--lora", type=int, default=8, help="Adapters for the multi-LoRA part (0: skip it)")
    ap.add_argument("--lora-clients", type=int, default=None, help="default 64, --smoke: 4")
    ap.add_argument("--lora-profile", action="store_true",
                    help="Profile 3 new tokens of PEFT's mixed batch, 1 adapter vs N (kernels per step, GPU busy)")
    ap.add_argument("--out", type=Path, default=None, help="Write serve_gpu.json here")
    opts = ap.parse_args()

    import os

    os.environ.setdefault("USE_HUB_KERNELS", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    device = "cpu" if opts.smoke else "cuda"
    opts.clients = opts.clients or ("1,4" if opts.smoke else "1,8,64")
    opts.max_tokens = opts.max_tokens or (8 if opts.smoke else 128)
    opts.lora_clients = opts.lora_clients or (4 if opts.smoke else 64)
    if opts.smoke:
        opts.lora = min(opts.lora, 2)
    else:
        assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU (or --smoke on a CPU)"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device {name}; torch {torch.__version__}, transformers {transformers.__version__}", flush=True)
    counts = [int(c) for c in opts.clients.split(",")]
    texts = prompts(max(counts) * opts.rounds, 0, opts.smoke)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = tmp / "qwen2.5-0.5b-random"
        t = time.perf_counter()
        build_model(model_dir, opts.smoke, device)
        print(f"model built in {time.perf_counter() - t:.1f} s", flush=True)
        for variant in filter(None, opts.variants.split(",")):
            if variant not in VARIANTS:
                raise SystemExit(f"--variants: {variant!r} is not one of {', '.join(VARIANTS)}")
            try:
                results += run_variant(variant, model_dir, counts, opts, texts, device)
            except Exception:  # noqa: BLE001 - report and go on
                traceback.print_exc()
                results.append({"variant": variant, "error": traceback.format_exc(limit=2).strip()[-400:]})
            free_gpu()
            if opts.out:
                opts.out.mkdir(parents=True, exist_ok=True)
                (opts.out / "serve_gpu.json").write_text(json.dumps({"device": name, "results": results}, indent=2))
        if opts.lora:
            try:
                adapters = build_adapters(model_dir, tmp, opts.lora)
                results += run_lora(model_dir, adapters, opts, texts, device)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                results.append({"variant": "multi-lora", "error": traceback.format_exc(limit=2).strip()[-400:]})
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "serve_gpu.json").write_text(json.dumps({"device": name, "results": results}, indent=2))
    print(f"\n{name}; {opts.max_tokens} new tokens per answer, {opts.rounds} requests per client")
    print(f"{'variant':32} {'clients':>7} {'tokens/s':>10} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12} {'wall s':>7}  errors")
    for r in results:
        if "error" in r or "skipped" in r:
            print(f"{r['variant']:32} {r.get('clients', ''):>7} {r.get('skipped') or 'failed: ' + r['error'][-200:]}")
            continue
        print(f"{r['variant']:32} {r['clients']:>7} {r['tokens_per_s']:10.0f} {r.get('ttft_p50_ms', float('nan')):12.1f} "
              f"{r.get('ttft_p99_ms', float('nan')):12.1f} {r['wall_s']:7.1f}  {r.get('n_errors', 0)}")
    by = {(r["variant"], r.get("clients")): r for r in results if "tokens_per_s" in r}
    for n in counts:
        e = by.get(("engine", n))
        for other in ("engine-serial", "hf-generate", "hf-cb"):
            o = by.get((other, n))
            if e and o:
                print(f"{n} clients: engine / {other} = {e['tokens_per_s'] / o['tokens_per_s']:.2f}x tokens/s")


if __name__ == "__main__":
    main()
