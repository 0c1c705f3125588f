"""Training throughput on one GPU: (a) plain TRL, (b) llmloop, (c) TRL as an expert sets it up; same run.

    python benchmarks/train_throughput.py --out results/        # on a CUDA machine (H100 in docs/benchmarks.md)
    python benchmarks/train_throughput.py --quick               # 2-layer model, a few examples: checks the code paths
    python benchmarks/train_throughput.py --quick --device cpu  # the same on a CPU (no Liger, fp32): a smoke run

Every (stage, variant) runs in a process of its own (this script started with ``--worker``): Liger
patches transformers' model classes process-wide, so a variant that ran after (b) in the same process
would get Liger's kernels without asking for them.

Model: a randomly initialised Qwen2.5-1.5B-architecture model (Qwen2Config; weights do not matter for
speed), bf16, LoRA r=16 / alpha 32 on every linear layer, max length 2048. Data: synthetic documents
of log-normally distributed lengths (median ~500 tokens, capped at 2,000), a word-level tokenizer
built here (one word = one token), so every variant sees exactly the same token sequences.

(a) ``SFTTrainer`` / ``DPOTrainer`` given the model path and a ``LoraConfig``, every other setting
    left at TRL's default (batch 8, padded batches, gradient checkpointing, SDPA) except max_length=2048
    and one epoch.
(b) ``llmloop.train.sft.build_trainer`` / ``llmloop.train.dpo.build_trainer``: the trainers the
    engine runs, with the engine's GPU defaults (speed: padding-free packing + varlen FlashAttention-2,
    Liger kernels, automatic batch size; DPO: TRL's padded pairs run padding-free underneath,
    train/unpad.py, with the varlen kernel).
(c) TRL configured by an expert: bf16 weights, no gradient checkpointing, ``use_liger_kernel``, the
    best attention kernel the machine has (``flash_attention_2`` where the flash-attn package imports,
    else ``--expert-attn``, default ``sdpa``); SFT: ``packing`` with ``packing_strategy="bfd"`` +
    ``padding_free``, 8 packed rows a step as (b); DPO: ``precompute_ref_log_probs``, 4 pairs x 2
    accumulation steps (8 padded pairs a pass do not fit without checkpointing; TRL 1.16 refuses
    padding-free DPO).

Reported: useful (non-padding) tokens/s and pairs/s over one whole epoch, end to end (building the
trainer: loading, tokenizing, packing, reference precomputation; then ``trainer.train()`` with any
out-of-memory retries), the same for ``train()`` alone, steady-state tokens/s (optimizer steps after
the first ``--warmup``, CUDA-synchronised), MFU, and the last logged loss and the epoch's mean loss. MFU
counts the FLOPs a LoRA step needs: 2N forward + 2N backward through the frozen weights (no weight
gradients), plus attention (3x its forward); the "6N" column uses the usual full-fine-tuning
convention. Recomputation by gradient checkpointing is not counted (model FLOPs, not hardware FLOPs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PEAK_BF16 = {"H100 SXM": 989.4e12, "H100 NVL": 835.0e12, "H100 PCIe": 756.0e12, "H200": 989.4e12}
WORDS = 30000
VARIANTS = ("a", "b", "c")
NAMES = {"a": "plain TRL", "b": "llmloop", "c": "expert TRL"}


def qwen15b_config(quick: bool, smoke: bool = False):
    """Qwen2.5-1.5B's shape; ``quick``: 2 layers; ``smoke``: a model small enough to train on 2 CPU cores."""
    from transformers import Qwen2Config

    if smoke:
        return Qwen2Config(vocab_size=WORDS + 3, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                           bos_token_id=1, eos_token_id=1)
    return Qwen2Config(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=2 if quick else 28,
        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
        rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643,
    )


def build_model_dir(path: Path, quick: bool, device: str = "cuda", smoke: bool = False) -> None:
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(qwen15b_config(quick, smoke)).to(torch.bfloat16)
    model.save_pretrained(path)
    del model
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{f"w{i}": i + 3 for i in range(WORDS)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    # Apart from the model: next to a Qwen2 config.json, AutoTokenizer would load Qwen2's own tokenizer class.
    fast.save_pretrained(path.parent / "tokenizer")


def lengths(rng: random.Random, n: int, median: float, cap: int) -> list[int]:
    return [max(16, min(cap, int(rng.lognormvariate(math.log(median), 0.8)))) for _ in range(n)]


def text(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(WORDS)}" for _ in range(n))


def sft_data(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"text": text(rng, k)} for k in lengths(rng, n, 500, 2000)]


def dpo_data(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    prompts = lengths(rng, n, 250, 1000)
    return [{"prompt": text(rng, p), "chosen": " " + text(rng, c), "rejected": " " + text(rng, r)}
            for p, c, r in zip(prompts, lengths(rng, n, 250, 1000), lengths(rng, n, 250, 1000), strict=True)]


def flops_per_token(cfg) -> tuple[float, float]:  # noqa: ANN001
    """(matmul FLOPs of one forward per token, attention forward FLOPs per token-of-context pair)."""
    d, kv = cfg.hidden_size, cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    per_layer = 2 * (d * d * 2 + d * kv * 2 + 3 * d * cfg.intermediate_size)
    return cfg.num_hidden_layers * per_layer + 2 * d * cfg.vocab_size, 4 * d * cfg.num_hidden_layers


def work(cfg, seqs: list[int]) -> tuple[float, float]:  # noqa: ANN001
    """(LoRA training FLOPs, 6N-convention FLOPs) for sequences of these lengths."""
    dense, attn = flops_per_token(cfg)
    tokens = sum(seqs)
    attention_fwd = sum(attn * n * (n + 1) / 2 for n in seqs)  # causal: token i sees i+1 tokens
    return 2 * dense * tokens + 2 * dense * tokens + 3 * attention_fwd, 3 * dense * tokens + 3 * attention_fwd


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(trainer):  # noqa: ANN001, ANN201
    """(seconds, TrainOutput) of ``trainer.train()``."""
    sync()
    began = time.perf_counter()
    output = trainer.train()
    sync()
    return time.perf_counter() - began, output


def lora_config():  # noqa: ANN201
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def tokenizer(model_dir: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir.parent / "tokenizer")


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def expert_attention(requested: str) -> str:
    """(c)'s attention: the flash-attn package's FlashAttention-2 where it imports, else ``requested``."""
    import importlib.util

    return "flash_attention_2" if on_gpu() and importlib.util.find_spec("flash_attn") else requested


def run_sft(variant: str, model_dir: Path, rows: list[dict], out: Path, expert_attn: str = "sdpa", **overrides):  # noqa: ANN003, ANN201
    """(a), (b) or (c)'s SFT trainer; ``overrides``: fields of (b)'s config (benchmarks/sft_mfu_sweep.py)."""
    import torch
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    if variant in ("a", "c"):
        from trl import SFTConfig, SFTTrainer

        common = dict(output_dir=str(out), max_length=2048, num_train_epochs=1, report_to=[], save_strategy="no",
                      disable_tqdm=True, logging_steps=10)
        if not on_gpu():  # the CPU smoke: no bf16 mixed precision, no Liger (Triton)
            common.update(bf16=False, use_cpu=True)
        if variant == "a":
            args = SFTConfig(**common)
        else:
            args = SFTConfig(**common, packing=True, packing_strategy="bfd", padding_free=True,
                             per_device_train_batch_size=8, gradient_checkpointing=False, use_liger_kernel=on_gpu(),
                             model_init_kwargs={"dtype": torch.bfloat16 if on_gpu() else torch.float32,
                                                "attn_implementation": expert_attention(expert_attn), "use_kernels": False})
        return SFTTrainer(model=str(model_dir), args=args, train_dataset=dataset, peft_config=lora_config(),
                          processing_class=tokenizer(model_dir))
    from llmloop.train import sft
    from llmloop.train.recipe_base import StartingModel
    from llmloop.train.config import SFTConfig as Ours

    fields = dict(model=str(model_dir), dataset="bench", finetuning="lora", tokenizer=str(model_dir.parent / "tokenizer"),
                  assistant_only_loss=False, lora={"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
                  max_length=2048, num_train_epochs=1, per_device_train_batch_size=8, learning_rate=2e-5,
                  lr_scheduler_type="linear", logging_steps=10, plot_loss=False)
    config = Ours(**{**fields, **overrides})
    return sft.build_trainer(config, StartingModel(str(model_dir), str(model_dir)), dataset, out, [])


def run_dpo(variant: str, model_dir: Path, rows: list[dict], out: Path, expert_attn: str = "sdpa", dpo_batch: int = 8):  # noqa: ANN201
    import torch
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    if variant in ("a", "c"):
        from trl import DPOConfig, DPOTrainer

        common = dict(output_dir=str(out), max_length=2048, num_train_epochs=1, report_to=[], save_strategy="no",
                      disable_tqdm=True, logging_steps=10)
        if not on_gpu():
            common.update(bf16=False, use_cpu=True)
        if variant == "a":
            args = DPOConfig(**common)
        else:
            args = DPOConfig(**common, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                             precompute_ref_log_probs=True, gradient_checkpointing=False, use_liger_kernel=on_gpu(),
                             model_init_kwargs={"dtype": torch.bfloat16 if on_gpu() else torch.float32,
                                                "attn_implementation": expert_attention(expert_attn), "use_kernels": False})
        return DPOTrainer(model=str(model_dir), args=args, train_dataset=dataset, peft_config=lora_config(),
                          processing_class=tokenizer(model_dir))
    from llmloop.train import dpo
    from llmloop.train.recipe_base import StartingModel
    from llmloop.train.config import DPOConfig as Ours

    config = Ours(model=str(model_dir), dataset="bench", finetuning="lora", tokenizer=str(model_dir.parent / "tokenizer"),
                  lora={"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
                  # The same 8 pairs per optimizer step as (a). Padding-free (train/unpad.py), 8 pairs are
                  # ~11k real tokens a pass, which fit without gradient checkpointing (padded they did not:
                  # the previous engine ran 4 pairs x 2 accumulation steps).
                  max_length=2048, num_train_epochs=1, per_device_train_batch_size=dpo_batch,
                  gradient_accumulation_steps=8 // dpo_batch, learning_rate=1e-6,
                  lr_scheduler_type="linear", logging_steps=10, plot_loss=False)
    return dpo.build_trainer(config, StartingModel(str(model_dir), str(model_dir)), dataset, out, [])


def top_kernels(prof, rows: int = 15) -> str:  # noqa: ANN001
    """The profile's CUDA kernels by total device time, with each one's share (the "why" of an MFU)."""
    import torch

    totals: dict[str, float] = {}
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            totals[e.name] = totals.get(e.name, 0.0) + (e.time_range.end - e.time_range.start)
    whole = sum(totals.values()) or 1.0
    lines = [f"{'share':>6} {'ms':>9}  kernel"]
    for name, us in sorted(totals.items(), key=lambda kv: -kv[1])[:rows]:
        lines.append(f"{us / whole:6.1%} {us / 1e3:9.1f}  {name[:110]}")
    return "\n".join(lines)


def profile_steps(stage: str, variant: str, model_dir: Path, rows: list[dict], tmp: Path, out: Path | None,
                  expert_attn: str) -> str:
    """Where a variant's GPU time goes: CUDA kernels of 3 steps after 3 warm-up steps, top 15 by time."""
    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    build = run_sft if stage == "sft" else run_dpo
    trainer = build(variant, model_dir, rows, tmp / f"profile-{stage}-{variant}", expert_attn=expert_attn)
    trainer.args.max_steps = 6
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], schedule=schedule(wait=1, warmup=2, active=3)) as prof:
        class Step(TrainerCallback):
            def on_step_end(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                prof.step()

        trainer.add_callback(Step())
        trainer.train()
    table = top_kernels(prof)
    print(f"profile of ({variant}) {stage}, 3 steps (CUDA kernels, share of kernel time):\n{table}", flush=True)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"profile_{stage}_{variant}.txt").write_text(table)
    return table


def unpadded(model) -> bool:  # noqa: ANN001
    """Whether llmloop's padding-free preference path (train/unpad.py) runs this model's decoder."""
    from llmloop.train.unpad import MARK, backbone_of

    try:
        return bool(getattr(backbone_of(model), MARK, False))
    except ValueError:
        return False


def steady_clock(warmup: int):  # noqa: ANN201
    """A callback that notes the time (CUDA-synchronised) at the end of step ``warmup`` and of the last step."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        marks: dict[int, float] = {}

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN202
            if state.global_step == warmup or state.global_step == state.max_steps:
                sync()
                self.marks[state.global_step] = time.perf_counter()

    return Clock()


def measure(stage: str, variant: str, model_dir: Path, rows: list[dict], cfg, peak: float, tmp: Path,  # noqa: ANN001
            expert_attn: str, warmup: int, dpo_batch: int) -> dict:
    import torch

    began = time.perf_counter()
    setup_profile = None
    if os.environ.get("BENCH_PROFILE_SETUP") == "1":  # --profile-setup: where the trainer's build goes
        import cProfile

        setup_profile = cProfile.Profile()
        setup_profile.enable()
    if stage == "sft":
        trainer = run_sft(variant, model_dir, rows, tmp / f"{stage}-{variant}", expert_attn=expert_attn)
    else:
        trainer = run_dpo(variant, model_dir, rows, tmp / f"{stage}-{variant}", expert_attn=expert_attn, dpo_batch=dpo_batch)
    setup_s = time.perf_counter() - began
    if setup_profile is not None:
        import io
        import pstats

        setup_profile.disable()
        text = io.StringIO()
        pstats.Stats(setup_profile, stream=text).sort_stats("cumulative").print_stats(40)
        print(f"setup profile of {stage} ({variant}), {setup_s:.1f} s:\n{text.getvalue()}", flush=True)
    if on_gpu():
        torch.cuda.reset_peak_memory_stats()
    clock = steady_clock(warmup)
    trainer.add_callback(clock)
    seconds, output = timed(trainer)
    if stage == "sft":
        seqs = [len(ids) for ids in trainer.train_dataset["input_ids"]] if "seq_lengths" not in trainer.train_dataset.column_names \
            else [n for row in trainer.train_dataset["seq_lengths"] for n in row]
    else:
        ds = trainer.train_dataset
        seqs = [min(2048, len(p) + len(c)) for p, c in zip(ds["prompt_ids"], ds["chosen_ids"], strict=True)]
        seqs += [min(2048, len(p) + len(r)) for p, r in zip(ds["prompt_ids"], ds["rejected_ids"], strict=True)]
    train_s = seconds
    seconds += setup_s  # end to end: loading, tokenizing, packing and any reference precomputation count too
    lora_flops, six_n = work(cfg, seqs)
    if stage == "dpo":  # the reference model's forward pass over every sequence (per step or precomputed)
        lora_flops += work(cfg, seqs)[1] / 3
    steps = trainer.state.global_step
    steady = None
    if warmup in clock.marks and steps in clock.marks and steps > warmup:
        # Useful tokens of the steps after warm-up, pro rata (every step of an epoch sees the same data mix)
        steady = sum(seqs) * (steps - warmup) / steps / (clock.marks[steps] - clock.marks[warmup])
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    args = trainer.args
    result = {
        "stage": stage, "variant": variant, "seconds": round(seconds, 2), "setup_s": round(setup_s, 1),
        "train_s": round(train_s, 2), "train_tokens_per_s": round(sum(seqs) / train_s, 1),
        "tokens": sum(seqs), "tokens_per_s": round(sum(seqs) / seconds, 1),
        "steady_tokens_per_s": round(steady, 1) if steady else None,
        "mfu_lora": round(lora_flops / seconds / peak, 4), "mfu_6n": round(six_n / seconds / peak, 4),
        "mfu_lora_steady": round(lora_flops / sum(seqs) * steady / peak, 4) if steady else None,
        "final_loss": round(losses[-1], 4) if losses else None, "mean_loss": round(output.training_loss, 4),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if on_gpu() else None,
        "batch_size": getattr(trainer, "_train_batch_size", args.per_device_train_batch_size),
        "gradient_checkpointing": args.gradient_checkpointing,
        "attn": trainer.model.config._attn_implementation if hasattr(trainer.model, "config") else None,
        "padding_free": bool(getattr(trainer, "padding_free", False) or unpadded(trainer.model)),
        "liger": bool(args.use_liger_kernel or liger_patched()),
        "precompute_ref": getattr(args, "precompute_ref_log_probs", None), "steps": steps,
    }
    if stage == "dpo":
        result["pairs_per_s"] = round(len(rows) / seconds, 2)
    return result


def liger_patched() -> bool:
    """Whether Liger's kernels are in this process's Qwen2 classes, asked for or not (the (a)-after-(b) trap)."""
    from transformers.models.qwen2 import modeling_qwen2

    return "liger" in getattr(modeling_qwen2.Qwen2RMSNorm, "__module__", "")


def device_info() -> dict:
    import torch
    import transformers
    import trl

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}
    try:
        import peft

        info["peft"] = peft.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        info["liger_kernel"] = version("liger-kernel")
    except Exception:  # noqa: BLE001 - not installed
        info["liger_kernel"] = None
    if not torch.cuda.is_available():
        return {**info, "device": "cpu", "peak": 1e12, "matmul_tflops": None}
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if all(w in name for w in k.split())), 989.4e12)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    return {**info, "device": name, "peak": peak, "matmul_tflops": round(10 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12, 1)}


def worker(task: dict) -> dict:
    """One task in this process: build the model, measure one (stage, variant), or profile one."""
    model_dir = Path(task["model_dir"])
    if task["task"] == "build":
        info = device_info()
        build_model_dir(model_dir, task["quick"], "cuda" if on_gpu() else "cpu", smoke=not on_gpu())
        return info
    cfg = qwen15b_config(task["quick"], smoke=not on_gpu())
    rows = sft_data(task["n"]) if task["stage"] == "sft" else dpo_data(task["n"])
    tmp = Path(task["tmp"])
    if task["task"] == "profile":
        return {"profile": profile_steps(task["stage"], task["variant"], model_dir, rows[:64], tmp,
                                         Path(task["out"]) if task.get("out") else None, task["expert_attn"])}
    return measure(task["stage"], task["variant"], model_dir, rows, cfg, task["peak"], tmp, task["expert_attn"],
                   task["warmup"], task["dpo_batch"])


def spawn(task: dict, timeout: float) -> dict:
    """Run ``task`` in a fresh Python process; its last ``RESULT`` line is the answer."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "USE_HUB_KERNELS": "0", "HF_HUB_OFFLINE": "1",
           "LLMLOOP_JOB_PROCESS": "1"}  # a process of its own, as a job's: the engine's full GPU defaults
    began = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(task)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        output = proc.stdout
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        output += f"\ntimed out after {timeout:.0f} s"
    found = [line[len("RESULT "):] for line in output.splitlines() if line.startswith("RESULT ")]
    if "setup profile of" in output:  # --profile-setup
        print(output[output.index("setup profile of"):].split("\nRESULT ")[0], flush=True)
    if found:
        result = json.loads(found[-1])
        result["process_s"] = round(time.perf_counter() - began, 1)
        return result
    tail = "\n".join(output.strip().splitlines()[-25:])
    print(tail, flush=True)
    return {"error": tail.splitlines()[-1][-300:] if tail else "no output"}


def report(results: list[dict], info: dict) -> None:
    print(f"\n{info.get('device')}; matmul {info.get('matmul_tflops')} TFLOP/s; torch {info.get('torch')}, "
          f"transformers {info.get('transformers')}, trl {info.get('trl')}, peft {info.get('peft')}, "
          f"liger-kernel {info.get('liger_kernel')}")
    print("stage variant        tokens/s  pairs/s  MFU(LoRA) steady tok/s steady MFU  mem GiB  seconds (setup)  "
          "final loss  mean loss  attn / padding-free / liger / ckpt")
    by = {(r["stage"], r["variant"]): r for r in results}
    for r in results:
        label = f"({r['variant']}) {NAMES[r['variant']]}"
        if "error" in r:
            print(f"{r['stage']:5} {label:14} failed: {r['error']}")
            continue
        steady = r.get("steady_tokens_per_s") or 0
        print(f"{r['stage']:5} {label:14} {r['tokens_per_s']:8.0f} {r.get('pairs_per_s', 0):8.2f} {r['mfu_lora']:9.1%} "
              f"{steady:12.0f} {r.get('mfu_lora_steady') or 0:10.1%} {r['peak_mem_gib'] or 0:8.1f} "
              f"{r['seconds']:8.1f} ({r['setup_s']:.1f}) {r['final_loss'] or float('nan'):10.4f} {r['mean_loss']:10.4f}  "
              f"{r['attn']} / {r['padding_free']} / {r['liger']} / {r['gradient_checkpointing']}")
    for stage in ("sft", "dpo"):
        b = by.get((stage, "b"))
        for other in ("a", "c"):
            o = by.get((stage, other))
            if b and o and "error" not in b and "error" not in o:
                line = f"{stage}: (b) llmloop / ({other}) {NAMES[other]} = {o['seconds'] / b['seconds']:.2f}x end to end"
                if b.get("steady_tokens_per_s") and o.get("steady_tokens_per_s"):
                    line += f", {b['steady_tokens_per_s'] / o['steady_tokens_per_s']:.2f}x steady state"
                print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-layer model and a few examples (a smoke run)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: a smoke run of the code paths on a machine without a GPU (with --quick)")
    parser.add_argument("--sft-examples", type=int, default=800)
    parser.add_argument("--dpo-pairs", type=int, default=320)
    parser.add_argument("--only", choices=["sft", "dpo"], default=None)
    parser.add_argument("--variants", default="a,b,c", help="comma-separated, of a (plain TRL), b (llmloop), c (expert TRL)")
    parser.add_argument("--expert-attn", default="sdpa", choices=["sdpa", "flex_attention", "flash_attention_2"],
                        help="(c)'s attention when the flash-attn package does not import (with it: flash_attention_2)")
    parser.add_argument("--warmup", type=int, default=3, help="Optimizer steps before the steady-state clock starts")
    parser.add_argument("--out", type=Path, default=None, help="Write results.json (and profiles) here")
    parser.add_argument("--dpo-batch", type=int, default=8, choices=[1, 2, 4, 8],
                        help="(b)'s DPO pairs per forward pass; accumulation makes up 8 pairs per step as (a)")
    parser.add_argument("--profile", default="", help="After the runs, profile 3 steps of these, e.g. sft:b,sft:c")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds one variant's process may take")
    parser.add_argument("--profile-setup", action="store_true",
                        help="Print a cProfile (cumulative, top 40) of each variant's trainer build (the setup seconds)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.profile_setup:
        os.environ["BENCH_PROFILE_SETUP"] = "1"  # read by the workers spawned below
    if opts.worker:
        print("RESULT " + json.dumps(worker(json.loads(opts.worker))), flush=True)
        return
    if opts.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # inherited by every worker
    else:
        import torch

        assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU (or --quick --device cpu for a smoke run)"
    n = {"sft": 48 if opts.quick else opts.sft_examples, "dpo": 24 if opts.quick else opts.dpo_pairs}
    if opts.device == "cpu":  # a smoke run: a tiny model (qwen15b_config's smoke shape), fewer examples
        n = {"sft": 16, "dpo": 8}
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = tmp / "qwen2.5-1.5b-random"
        base = {"model_dir": str(model_dir), "quick": opts.quick, "tmp": tmp_name}
        info = spawn({**base, "task": "build"}, opts.timeout)
        if "error" in info:
            raise SystemExit(f"building the model failed: {info['error']}")
        print(f"device {info['device']}; peak bf16 {info['peak'] / 1e12:.0f} TFLOP/s (datasheet), measured 8192^3 matmul "
              f"{info['matmul_tflops']} TFLOP/s; {json.dumps({k: v for k, v in info.items() if k not in ('device', 'peak', 'matmul_tflops')})}",
              flush=True)
        for stage in ("sft", "dpo"):
            if opts.only and stage != opts.only:
                continue
            for variant in opts.variants.split(","):
                task = {**base, "task": "measure", "stage": stage, "variant": variant, "n": n[stage], "peak": info["peak"],
                        "expert_attn": opts.expert_attn, "warmup": opts.warmup, "dpo_batch": opts.dpo_batch}
                r = {"stage": stage, "variant": variant, **spawn(task, opts.timeout)}
                results.append(r)
                print(json.dumps(r), flush=True)
                if opts.out:  # after every variant: a run cut short keeps what it measured
                    opts.out.mkdir(parents=True, exist_ok=True)
                    (opts.out / "results.json").write_text(json.dumps({**info, "results": results}, indent=2))
        for item in filter(None, opts.profile.split(",")):
            stage, variant = item.split(":")
            p = spawn({**base, "task": "profile", "stage": stage, "variant": variant, "n": n[stage],
                       "expert_attn": opts.expert_attn, "out": str(opts.out) if opts.out else None}, opts.timeout)
            print(f"profile of ({variant}) {stage}, 3 steps after 3 (CUDA kernels, share of kernel time):\n"
                  f"{p.get('profile') or p}", flush=True)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "results.json").write_text(json.dumps({**info, "results": results}, indent=2))
    report(results, info)


if __name__ == "__main__":
    main()
