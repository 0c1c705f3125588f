"""Training throughput on one GPU: (a) plain TRL with its defaults vs (b) llmloop's engine, same run.

    python benchmarks/train_throughput.py --out results/        # on a CUDA machine (H100 in docs/benchmarks.md)
    python benchmarks/train_throughput.py --quick               # 2-layer model, a few examples: checks the code paths

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

Reported: useful (non-padding) tokens/s and pairs/s over one whole epoch, end to end (building the
trainer: loading, tokenizing, packing, reference precomputation; then ``trainer.train()`` with any
out-of-memory retries), the same for ``train()`` alone, and MFU (end to end). MFU
counts the FLOPs a LoRA step needs: 2N forward + 2N backward through the frozen weights (no weight
gradients), plus attention (3x its forward); the "6N" column uses the usual full-fine-tuning
convention. Recomputation by gradient checkpointing is not counted (model FLOPs, not hardware FLOPs).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PEAK_BF16 = {"H100 SXM": 989.4e12, "H100 NVL": 835.0e12, "H100 PCIe": 756.0e12, "H200": 989.4e12}
WORDS = 30000


def qwen15b_config(quick: bool):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=2 if quick else 28,
        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
        rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643,
    )


def build_model_dir(path: Path, quick: bool) -> None:
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(qwen15b_config(quick)).to(torch.bfloat16)
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


def timed(trainer) -> float:  # noqa: ANN001
    import torch

    torch.cuda.synchronize()
    began = time.perf_counter()
    trainer.train()
    torch.cuda.synchronize()
    return time.perf_counter() - began


def lora_config():  # noqa: ANN201
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def tokenizer(model_dir: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir.parent / "tokenizer")


def run_sft(variant: str, model_dir: Path, rows: list[dict], out: Path, **overrides):  # noqa: ANN003, ANN201
    """(a) or (b)'s SFT trainer; ``overrides``: fields of (b)'s config (benchmarks/sft_mfu_sweep.py)."""
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    if variant == "a":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(output_dir=str(out), max_length=2048, num_train_epochs=1, report_to=[], save_strategy="no",
                         disable_tqdm=True)
        return SFTTrainer(model=str(model_dir), args=args, train_dataset=dataset, peft_config=lora_config(),
                          processing_class=tokenizer(model_dir))
    from llmloop.train import sft
    from llmloop.train.common import StartingModel
    from llmloop.train.config import SFTConfig as Ours

    fields = dict(model=str(model_dir), dataset="bench", finetuning="lora", tokenizer=str(model_dir.parent / "tokenizer"),
                  assistant_only_loss=False, lora={"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
                  max_length=2048, num_train_epochs=1, per_device_train_batch_size=8, learning_rate=2e-5,
                  lr_scheduler_type="linear", logging_steps=10, plot_loss=False)
    config = Ours(**{**fields, **overrides})
    return sft.build_trainer(config, StartingModel(str(model_dir), str(model_dir)), dataset, out, [])


def run_dpo(variant: str, model_dir: Path, rows: list[dict], out: Path):  # noqa: ANN201
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    if variant == "a":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(output_dir=str(out), max_length=2048, num_train_epochs=1, report_to=[], save_strategy="no",
                         disable_tqdm=True)
        return DPOTrainer(model=str(model_dir), args=args, train_dataset=dataset, peft_config=lora_config(),
                          processing_class=tokenizer(model_dir))
    from llmloop.train import dpo
    from llmloop.train.common import StartingModel
    from llmloop.train.config import DPOConfig as Ours

    config = Ours(model=str(model_dir), dataset="bench", finetuning="lora", tokenizer=str(model_dir.parent / "tokenizer"),
                  lora={"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
                  # The same 8 pairs per optimizer step as (a). Padding-free (train/unpad.py), 8 pairs are
                  # ~11k real tokens a pass, which fit without gradient checkpointing (padded they did not:
                  # the previous engine ran 4 pairs x 2 accumulation steps).
                  max_length=2048, num_train_epochs=1, per_device_train_batch_size=opts_dpo_batch(),
                  gradient_accumulation_steps=8 // opts_dpo_batch(), learning_rate=1e-6,
                  lr_scheduler_type="linear", logging_steps=10, plot_loss=False)
    return dpo.build_trainer(config, StartingModel(str(model_dir), str(model_dir)), dataset, out, [])


_DPO_BATCH = [8]


def opts_dpo_batch() -> int:
    return _DPO_BATCH[0]


def profile_steps(stage: str, model_dir: Path, rows: list[dict], tmp: Path, out: Path | None) -> None:
    """Where (b)'s GPU time goes: CUDA kernels of 3 steps after 3 warm-up steps, top 20 by time."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    build = run_sft if stage == "sft" else run_dpo
    trainer = build("b", model_dir, rows, tmp / f"profile-{stage}")
    trainer.args.max_steps = 6
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], schedule=schedule(wait=1, warmup=2, active=3)) as prof:
        class Step(TrainerCallback):
            def on_step_end(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                prof.step()

        trainer.add_callback(Step())
        trainer.train()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=60)
    print(f"profile of (b) {stage}, 3 steps:\n{table}", flush=True)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"profile_{stage}.txt").write_text(table)
    del trainer
    import gc

    gc.collect()
    torch.cuda.empty_cache()


def unpadded(model) -> bool:  # noqa: ANN001
    """Whether llmloop's padding-free preference path (train/unpad.py) runs this model's decoder."""
    from llmloop.train.unpad import MARK, backbone_of

    try:
        return bool(getattr(backbone_of(model), MARK, False))
    except ValueError:
        return False


def measure(stage: str, variant: str, model_dir: Path, rows: list[dict], cfg, peak: float, tmp: Path) -> dict:  # noqa: ANN001
    import torch

    build = run_sft if stage == "sft" else run_dpo
    began = time.perf_counter()
    trainer = build(variant, model_dir, rows, tmp / f"{stage}-{variant}")
    setup_s = time.perf_counter() - began
    torch.cuda.reset_peak_memory_stats()
    seconds = timed(trainer)
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
    args = trainer.args
    result = {
        "stage": stage, "variant": variant, "seconds": round(seconds, 2), "setup_s": round(setup_s, 1),
        "train_s": round(train_s, 2), "train_tokens_per_s": round(sum(seqs) / train_s, 1),
        "tokens": sum(seqs), "tokens_per_s": round(sum(seqs) / seconds, 1),
        "mfu_lora": round(lora_flops / seconds / peak, 4), "mfu_6n": round(six_n / seconds / peak, 4),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
        "batch_size": getattr(trainer, "_train_batch_size", args.per_device_train_batch_size),
        "gradient_checkpointing": args.gradient_checkpointing,
        "attn": trainer.model.config._attn_implementation if hasattr(trainer.model, "config") else None,
        "padding_free": bool(getattr(trainer, "padding_free", False) or unpadded(trainer.model)), "liger": args.use_liger_kernel,
        "precompute_ref": getattr(args, "precompute_ref_log_probs", None), "steps": trainer.state.global_step,
    }
    if stage == "dpo":
        result["pairs_per_s"] = round(len(rows) / seconds, 2)
    del trainer
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-layer model and a few examples (a smoke run)")
    parser.add_argument("--sft-examples", type=int, default=800)
    parser.add_argument("--dpo-pairs", type=int, default=320)
    parser.add_argument("--only", choices=["sft", "dpo"], default=None)
    parser.add_argument("--out", type=Path, default=None, help="Write results.json here")
    parser.add_argument("--dpo-batch", type=int, default=8, choices=[1, 2, 4, 8],
                        help="(b)'s DPO pairs per forward pass; accumulation makes up 8 pairs per step as (a)")
    parser.add_argument("--profile", action="store_true", help="After the runs, profile 3 steps of (b) per stage")
    opts = parser.parse_args()
    _DPO_BATCH[0] = opts.dpo_batch

    import torch
    import transformers
    import trl

    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
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
    matmul = 10 * 2 * 8192**3 / (time.perf_counter() - t)
    del a
    print(f"device {name}; peak bf16 {peak / 1e12:.0f} TFLOP/s (datasheet), measured 8192^3 matmul "
          f"{matmul / 1e12:.0f} TFLOP/s; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"trl {trl.__version__}", flush=True)
    n_sft = 48 if opts.quick else opts.sft_examples
    n_dpo = 24 if opts.quick else opts.dpo_pairs
    cfg = qwen15b_config(opts.quick)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = tmp / "qwen2.5-1.5b-random"
        build_model_dir(model_dir, opts.quick)
        plan = [("sft", sft_data(n_sft)), ("dpo", dpo_data(n_dpo))]
        for stage, rows in plan:
            if opts.only and stage != opts.only:
                continue
            for variant in ("b", "a"):
                try:
                    r = measure(stage, variant, model_dir, rows, cfg, peak, tmp)
                except Exception:  # noqa: BLE001 - report the failure and go on with the other variants
                    traceback.print_exc()
                    r = {"stage": stage, "variant": variant, "error": traceback.format_exc(limit=1).strip()[-300:]}
                    gc.collect()
                    torch.cuda.empty_cache()
                results.append(r)
                print(json.dumps(r), flush=True)
        if opts.profile:
            for stage, rows in plan:
                if not opts.only or stage == opts.only:
                    profile_steps(stage, model_dir, rows[:64], tmp, opts.out)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "results.json").write_text(json.dumps({"device": name, "matmul_tflops": matmul / 1e12,
                                                           "results": results}, indent=2))
    print("\nstage variant  tokens/s   pairs/s  MFU(LoRA)  MFU(6N)  mem GiB  seconds  (train() only: s, tokens/s)")
    by = {(r["stage"], r["variant"]): r for r in results}
    for r in results:
        if "error" in r:
            print(f"{r['stage']:5} {r['variant']:7}  failed: {r['error']}")
            continue
        print(f"{r['stage']:5} {r['variant']:7} {r['tokens_per_s']:9.0f} {r.get('pairs_per_s', 0):9.2f} "
              f"{r['mfu_lora']:9.1%} {r['mfu_6n']:8.1%} {r['peak_mem_gib']:8.1f} {r['seconds']:8.1f}"
              f"  ({r['train_s']:.1f}, {r['train_tokens_per_s']:.0f})")
    for stage in ("sft", "dpo"):
        a, b = by.get((stage, "a")), by.get((stage, "b"))
        if a and b and "error" not in a and "error" not in b:
            print(f"{stage}: llmloop / plain TRL = {b['seconds'] and a['seconds'] / b['seconds']:.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["LLMLOOP_JOB_PROCESS"] = "1"  # a process of its own, as a job's: the engine's full GPU defaults
    main()
