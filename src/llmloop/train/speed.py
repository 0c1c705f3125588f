"""How a run goes fast on a GPU and stays correct on a CPU: one plan per run, from the config's
``speed`` block and what the machine has.

The contract: ``plan(settings, stage)`` decides, once, the attention kernel, padding-free packing,
Liger kernels and automatic batch sizing; the recipes read the plan and pass it to TRL /
transformers as their own arguments (``attn_implementation``, ``packing``/``padding_free``,
``use_liger_kernel``, ``auto_find_batch_size``). Nothing here trains.

Padding-free training flattens a batch into one sequence and marks where each example starts
(``position_ids``, ``cu_seq_lens``), so no padding is computed and no example attends to
another. That needs a variable-length attention kernel. The field's one is FlashAttention-2
(``flash_attention_2``), whose wheel must be compiled against the exact torch/CUDA pair; PyTorch
(>= 2.10) ships the same FlashAttention-2 kernels as ``torch.nn.attention.varlen.varlen_attn``. We
register that kernel under transformers' documented ``AttentionInterface`` as ``llmloop_varlen``
(a 30-line adapter: layouts in, layouts out, no kernel of ours). With ``flash_attention_2``
installed, ``speed.attention: flash_attention_2`` uses it instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any

from llmloop.train.config import SpeedSettings

log = logging.getLogger("llmloop.train")

VARLEN = "llmloop_varlen"
JOB_PROCESS_ENV = "LLMLOOP_JOB_PROCESS"  # set in a job's own process (train/worker.py)
# Stages that can train padding-free: pt/sft through TRL's packing collator, dpo through
# train/unpad.py (TRL 1.16 disabled DPOTrainer's own padding_free; the RM, KTO and RL trainers pad).
# ORPO/SimPO (``method`` of stage dpo) run TRL's experimental trainers, planned as "orpo"/"simpo".
PADDING_FREE_STAGES = ("pt", "sft", "dpo")
# Padded stages whose recipes group batches by length (dpo only when it is not padding-free).
# KTO needs TRL's sequential sampler (its KL pairs are batch neighbours).
PADDED_STAGES = ("dpo", "rm")
LENGTH_COLUMN = "llmloop_length"


@dataclass(frozen=True)
class SpeedPlan:
    """What a run uses; recorded in the job log."""

    attention: str  # transformers attn_implementation
    padding_free: bool
    liger_kernel: bool
    auto_find_batch_size: bool
    group_by_length: bool = False
    lora_input_cast: bool = False

    def apply_to_adapter(self, model) -> None:  # noqa: ANN001
        """Turn off PEFT's fp32 cast of LoRA inputs unless the plan keeps it (``speed.lora_input_cast``).

        PEFT keeps the adapter weights in fp32 over a bf16 base and casts every LoRA layer's input to
        fp32; under autocast the LoRA matmul casts it back to bf16. The cast therefore costs two
        activation-sized copies per LoRA layer and pass (22-24% of a LoRA step's GPU time in an H100
        profile) and changes no number: the forward pass is bit for bit the same, and with LoRA dropout 0
        (or the same dropout mask) the adapter gradients are too (``tests/train/test_train_config.py``
        on the CPU, ``tests/train/test_gpu_engines.py`` on CUDA). With dropout on, CUDA draws a different
        mask for a bf16 input than for an fp32 one, so the two runs take different (equally valid) dropout
        samples; that, not precision, was the 27% gradient difference once recorded (NOTES, session 4).
        So the cast is off unless a config turns it on, except for GRPO: TRL generates its completions
        outside autocast, where a bf16 input into the fp32 LoRA weights is a dtype error without the cast.
        """
        if self.lora_input_cast:
            return
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                module.cast_input_dtype_enabled = False

    def model_kwargs(self) -> dict[str, Any]:
        if self.attention == VARLEN:
            register_varlen_attention()
        # transformers >= 5.2x turns on Hub kernels (the `kernels` package) by default on a GPU; they are
        # fetched from the Hub when the model loads, which offline machines cannot do. The plan chooses
        # the kernels itself (varlen attention, Liger), so the runs are the same on and offline.
        return {"attn_implementation": self.attention, "use_kernels": False}


def add_length_column(trainer, columns: tuple[str, ...]) -> None:  # noqa: ANN001
    """Give the trainer's tokenized dataset the per-example length the length-grouped sampler reads
    (the longest of ``columns`` summed with ``prompt_ids`` when present)."""

    def length(row: dict) -> dict:
        prompt = len(row.get("prompt_ids") or [])
        return {LENGTH_COLUMN: prompt + max(len(row[c]) for c in columns)}

    trainer.train_dataset = trainer.train_dataset.map(length)
    # The trainer drops columns its model does not take before the sampler reads them: keep ours.
    trainer._set_signature_columns_if_needed()
    if LENGTH_COLUMN not in trainer._signature_columns:
        trainer._signature_columns.append(LENGTH_COLUMN)


def grouping_arguments(speed: "SpeedPlan") -> dict[str, Any]:
    if not speed.group_by_length:
        return {}
    return {"train_sampling_strategy": "group_by_length", "length_column_name": LENGTH_COLUMN}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def varlen_kernel_available() -> bool:
    """PyTorch's FlashAttention-2 variable-length kernel: CUDA, torch >= 2.10, Ampere or newer."""
    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("torch.nn.attention.varlen") is None:
        return False
    return torch.cuda.get_device_capability()[0] >= 8


def plan(settings: SpeedSettings, stage: str, cuda: bool | None = None) -> SpeedPlan:
    """Resolve every ``auto`` (None) in ``settings`` for ``stage`` on this machine.

    On CPU everything is off (plain SDPA, padded batches): the kernels are CUDA-only and the tiny
    test models gain nothing. On a GPU: padding-free packing with the varlen kernel for pt/sft,
    padding-free preference pairs for dpo (train/unpad.py: TRL's padded batches, unpadded below the LM head),
    Liger's fused RMSNorm/SwiGLU/RoPE kernels when ``liger-kernel`` is installed, and
    transformers' automatic batch size (halve on out-of-memory, retry).
    """
    cuda = cuda_available() if cuda is None else cuda
    score_labelled_positions_only_on_cpu()
    problems = []
    attention = settings.attention
    padding_free = settings.padding_free
    if padding_free and stage not in PADDING_FREE_STAGES:
        problems.append(
            f"speed.padding_free: stage {stage} cannot train padding-free (TRL's trainer for it pads); "
            "set speed.padding_free to false or leave it out"
        )
    if padding_free is None:
        padding_free = cuda and stage in PADDING_FREE_STAGES and (
            attention in ("auto", VARLEN) and varlen_kernel_available() or attention == "flash_attention_2"
        )
    if attention == "auto":
        attention = VARLEN if padding_free and varlen_kernel_available() else "sdpa"
        if padding_free and attention == "sdpa":
            problems.append(
                "speed.padding_free is true but no variable-length attention kernel is available here "
                "(needs CUDA and torch >= 2.10, or flash-attn with speed.attention=flash_attention_2); "
                "set speed.padding_free=false"
            )
    if attention == VARLEN and not varlen_kernel_available():
        problems.append(
            f"speed.attention={VARLEN} needs a CUDA GPU (compute capability >= 8) and torch >= 2.10; "
            "use speed.attention=sdpa"
        )
    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        problems.append("speed.attention=flash_attention_2 needs the flash-attn package; pip install flash-attn, "
                        f"or use speed.attention={VARLEN} (PyTorch's own FlashAttention-2 kernels)")
    if padding_free and attention in ("sdpa", "eager"):
        problems.append(
            f"speed.padding_free with speed.attention={attention} would let packed examples attend to each "
            f"other or build a dense mask; use speed.attention={VARLEN} or flash_attention_2"
        )
    liger = settings.liger_kernel
    has_liger = importlib.util.find_spec("liger_kernel") is not None
    if liger and not (cuda and has_liger):
        problems.append("speed.liger_kernel=true needs a CUDA GPU and `pip install liger-kernel`; "
                        "set speed.liger_kernel=false")
    if liger is None:
        # Liger patches transformers' model classes for the whole process (not only this model): a model
        # loaded later in the same process, on a CPU too, would run its Triton kernels. So "auto" turns
        # it on only in a job's own process (and in benchmarks/train_throughput.py, a process of its own).
        liger = cuda and has_liger and os.environ.get(JOB_PROCESS_ENV) == "1"
    auto_bs = settings.auto_find_batch_size
    if auto_bs and stage == "grpo":
        problems.append("speed.auto_find_batch_size: GRPO's batches must hold whole groups of num_generations "
                        "answers, so TRL refuses it; set it to false and lower per_device_train_batch_size")
    if auto_bs is None:
        auto_bs = cuda and stage != "grpo"
    grouped = settings.group_by_length
    if grouped and stage == "kto":
        problems.append("speed.group_by_length: KTO estimates its KL term from neighbouring examples in a fixed "
                        "order (TRL requires the sequential sampler); set it to false")
    if grouped is None:  # padding-free batches have no padding to save
        grouped = cuda and stage in PADDED_STAGES and not padding_free
    cast = settings.lora_input_cast
    if cast is False and stage == "grpo" and cuda:
        problems.append("speed.lora_input_cast=false: GRPO generates its completions outside autocast, where the bf16 "
                        "activations cannot enter the fp32 LoRA weights uncast; leave speed.lora_input_cast out")
    if cast is None:  # off: under autocast the cast only copies (SpeedPlan.apply_to_adapter); GRPO needs it
        cast = stage == "grpo"
    if problems:
        from llmloop.train.config import TrainingInputError

        raise TrainingInputError("; ".join(problems))
    return SpeedPlan(attention=attention, padding_free=bool(padding_free), liger_kernel=bool(liger),
                     auto_find_batch_size=bool(auto_bs), group_by_length=bool(grouped),
                     lora_input_cast=bool(cast))


def score_labelled_positions_only_on_cpu() -> None:
    """Make TRL's fused LM head score only the positions that have a label on a CPU too (idempotent).

    TRL's trainers (sft, dpo, kto, grpo) project hidden states through the LM head in tiles and
    fold them into log-probabilities (``trl.kernels.chunked_logprob``). On Triton devices they first
    drop the positions whose label is -100 (prompt, padding); elsewhere they score every position,
    because on XLA devices (Neuron) the changing number of positions would recompile the graph every
    batch. A CPU does not recompile, so there the same compaction is only less work: the demo's SFT
    ran 1.7-2.1x faster, its losses equal to within 1e-5 (benchmarks/cpu_sft.py). TRL decides this with
    ``trl.trainer.utils._use_triton(device)``, used for nothing else in that module; the kernel's own
    choice of Triton vs torch folding (its module's ``_use_triton``) is left alone.
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None or getattr(original, "llmloop_compact_on_cpu", False):
        return

    def compact(device) -> bool:  # noqa: ANN001
        return device.type == "cpu" or original(device)

    compact.llmloop_compact_on_cpu = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact


_registered = False


def register_varlen_attention() -> None:
    """Make ``attn_implementation="llmloop_varlen"`` loadable (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, varlen_attention_forward)
    _registered = True


def varlen_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,  # noqa: ANN001, ANN201
                             scaling: float | None = None, **kwargs: Any):
    """transformers attention function over ``torch.nn.attention.varlen.varlen_attn``.

    In: query/key/value ``(batch, heads, tokens, head_dim)``; out ``(batch, tokens, heads, head_dim)``.
    A padding-free batch (batch 1 with ``cu_seq_lens_q``/``cu_seq_lens_k`` from TRL's collator) runs
    causal FlashAttention-2 per example. Any other call (generation, one unpadded sequence) falls
    back to transformers' SDPA; since transformers builds no mask for an implementation it does not
    know, a padded batch of several rows is refused rather than attended wrongly.
    """
    import torch
    from torch.nn.attention.varlen import varlen_attn
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_q, cu_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    if cu_q is None or cu_k is None:
        if query.shape[0] > 1:
            raise ValueError(
                f"attn_implementation={VARLEN} got a padded batch of {query.shape[0]} rows without sequence "
                "boundaries; it is for padding-free training only (load the model with attn_implementation='sdpa')"
            )
        return sdpa_attention_forward(module, query, key, value, None, dropout=dropout, scaling=scaling,
                                      is_causal=query.shape[2] > 1)
    out_dtype = query.dtype
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, head_dim)
    if q.dtype not in (torch.float16, torch.bfloat16):
        # fp32 weights under bf16 autocast (full fine-tuning): RoPE leaves q/k in fp32, FlashAttention
        # takes 16-bit inputs only, so attention runs in the autocast dtype, as SDPA's flash path would.
        half = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
        q, k, v = q.to(half), k.to(half), v.to(half)
    options: dict[str, Any] = {"scale": scaling}
    params = _varlen_params()
    # torch 2.10 spelled causality `is_causal`; later releases a (left, right) window, (-1, 0) = causal.
    options.update({"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True})
    if q.shape[1] != k.shape[1]:  # grouped-query attention
        if "enable_gqa" in params:
            options["enable_gqa"] = True
        else:
            k, v = (t.repeat_interleave(q.shape[1] // k.shape[1], dim=1) for t in (k, v))
    out = varlen_attn(
        q, k, v,
        cu_q.to(q.device, non_blocking=True).int(), cu_k.to(q.device, non_blocking=True).int(),
        int(kwargs.get("max_length_q") or q.shape[0]), int(kwargs.get("max_length_k") or k.shape[0]),
        **options,
    )
    return out.unsqueeze(0).to(out_dtype), None


def _varlen_params() -> frozenset[str]:
    import inspect

    from torch.nn.attention.varlen import varlen_attn

    return frozenset(inspect.signature(varlen_attn).parameters)
