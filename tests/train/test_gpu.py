"""GPU-only checks of the speed path (marked ``gpu``; skipped without CUDA). They need no store, so
they also run with ``pytest --noconftest tests/train/test_gpu.py`` on a bare GPU machine."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_varlen_attention_keeps_packed_sequences_apart():
    """Packed-and-flattened attention equals causal SDPA run on each sequence alone."""
    import torch.nn.functional as F

    from llmloop.train.speed import varlen_attention_forward, varlen_kernel_available

    if not varlen_kernel_available():
        pytest.skip("torch.nn.attention.varlen needs torch >= 2.10 and compute capability >= 8")
    torch.manual_seed(0)
    lengths, heads, kv_heads, dim = [5, 130, 61], 12, 2, 128
    total = sum(lengths)
    q = torch.randn(1, heads, total, dim, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, kv_heads, total, dim, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, kv_heads, total, dim, device="cuda", dtype=torch.bfloat16)
    cu = torch.tensor([0, 5, 135, 196], dtype=torch.int32)
    out, _ = varlen_attention_forward(None, q, k, v, None, scaling=dim ** -0.5, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                                      max_length_q=130, max_length_k=130)
    assert out.shape == (1, total, heads, dim)
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        ref = F.scaled_dot_product_attention(
            q[:, :, start:end].float(), k[:, :, start:end].float().repeat_interleave(heads // kv_heads, 1),
            v[:, :, start:end].float().repeat_interleave(heads // kv_heads, 1), is_causal=True,
        ).transpose(1, 2)
        got = out[:, start:end].float()
        assert (got - ref).norm() / ref.norm() < 1e-2


def test_speed_plan_turns_the_fast_path_on_for_a_gpu(monkeypatch):
    from llmloop.train.config import SpeedSettings
    from llmloop.train.speed import VARLEN, plan

    sft = plan(SpeedSettings(), "sft")
    assert (sft.attention, sft.padding_free, sft.auto_find_batch_size) == (VARLEN, True, True)
    assert sft.liger_kernel is False  # in-process: Liger would patch every later model of this process
    monkeypatch.setenv("LLMLOOP_JOB_PROCESS", "1")
    import importlib.util

    assert plan(SpeedSettings(), "sft").liger_kernel is (importlib.util.find_spec("liger_kernel") is not None)
    dpo = plan(SpeedSettings(), "dpo")  # padding-free underneath TRL's padded batches (train/unpad.py)
    assert (dpo.attention, dpo.padding_free, dpo.group_by_length) == (VARLEN, True, False)
    orpo = plan(SpeedSettings(), "orpo")  # TRL's experimental ORPO/CPO trainers pad
    assert (orpo.attention, orpo.padding_free) == ("sdpa", False)
    assert plan(SpeedSettings(), "sft", cuda=False).padding_free is False
    assert plan(SpeedSettings(), "grpo").auto_find_batch_size is False  # TRL refuses it for GRPO
    assert plan(SpeedSettings(), "kto").group_by_length is False  # KTO needs the sequential sampler


def test_varlen_attention_runs_fp32_inputs_in_16_bit():
    """Full fine-tuning keeps fp32 weights under bf16 autocast; RoPE hands attention fp32 q/k."""
    from llmloop.train.speed import varlen_attention_forward, varlen_kernel_available

    if not varlen_kernel_available():
        pytest.skip("needs the varlen kernel")
    q = torch.randn(1, 4, 10, 64, device="cuda")
    cu = torch.tensor([0, 4, 10], dtype=torch.int32)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, _ = varlen_attention_forward(None, q, q.clone(), q.clone(), None, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                                          max_length_q=6, max_length_k=6)
    assert out.dtype == torch.float32 and out.shape == (1, 10, 4, 64) and torch.isfinite(out).all()
