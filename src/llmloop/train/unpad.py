"""Padding-free forward passes for trainers whose collators pad (DPO in TRL 1.16).

The contract: ``unpad_backbone(model)`` changes *how* the decoder stack runs, never *what* it
returns. A padded training batch (``input_ids`` + a right-padded 2-D ``attention_mask``, no cache)
is flattened to one row of real tokens with per-sequence ``position_ids`` and FlashAttention's
``cu_seq_lens``; the decoder runs on that row only, and its hidden states are scattered back into
the padded ``(batch, length, hidden)`` shape the caller expects, zeros at the padding. Everything
downstream — TRL's fused LM head, the DPO losses, the reference pass (adapter disabled or a
separate reference model), the precomputation of reference log-probs — sees the padded shapes it
was written for and computes the same numbers, without spending a FLOP on padding.

Why the backbone and not the trainer: TRL 1.16 disabled ``DPOConfig.padding_free`` "after a
refactor", and its loss code (15 loss types, WPO weights, LD-DPO) indexes padded ``(2·batch,
length)`` tensors throughout. Unpadding below the LM head keeps all of that TRL's own code.
The flattened row needs a variable-length attention kernel (``llmloop_varlen`` or
``flash_attention_2``, which read ``cu_seq_lens``); SDPA and eager also stay correct because
transformers builds a block-diagonal mask from packed ``position_ids``, but slower.

Calls that are not padded training batches (generation with a cache, ``inputs_embeds``, MoE router
outputs, left padding) run the original forward unchanged.
"""

from __future__ import annotations

import types
from typing import Any

MARK = "_llmloop_unpadded"


def backbone_of(model):  # noqa: ANN001, ANN201
    """The decoder stack under a causal LM (through a PEFT wrapper): what TRL's fused head calls."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    prefix = getattr(inner, "base_model_prefix", "model")
    backbone = getattr(inner, prefix, None)
    if backbone is None or backbone is inner:
        raise ValueError(f"{type(inner).__name__} has no decoder stack under {prefix!r}; padding-free needs a causal LM")
    return backbone


def unpad_backbone(model) -> bool:  # noqa: ANN001
    """Make ``model``'s decoder run padded batches padding-free (idempotent). Returns whether it
    changed anything (False when it already had)."""
    backbone = backbone_of(model)
    if getattr(backbone, MARK, False):
        return False
    original = backbone.forward

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,  # noqa: ANN001, ANN202
                inputs_embeds=None, use_cache=None, **kwargs: Any):
        plain = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                     past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        if (input_ids is None or attention_mask is None or attention_mask.dim() != 2 or past_key_values is not None
                or use_cache or position_ids is not None or kwargs.get("output_router_logits")
                or "cu_seq_lens_q" in kwargs):
            return original(**plain)
        flat = flatten(input_ids, attention_mask)
        if flat is None:  # not right-padded
            return original(**plain)
        ids, positions, cu, longest, mask = flat
        out = original(input_ids=ids, attention_mask=None, position_ids=positions, use_cache=False,
                       cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest, **kwargs)
        hidden = out.last_hidden_state[0]  # (real tokens, hidden)
        out.last_hidden_state = hidden.new_zeros(*mask.shape, hidden.shape[-1]).masked_scatter(mask.unsqueeze(-1), hidden)
        return out

    backbone.forward = types.MethodType(forward, backbone)
    setattr(backbone, MARK, True)
    return True


def flatten(input_ids, attention_mask):  # noqa: ANN001, ANN201
    """(ids (1, T), position_ids (1, T), cu_seq_lens int32 (B+1,), longest, bool mask (B, L)) for a
    right-padded batch, or None when some row is not right-padded. One host sync (the lengths)."""
    import torch

    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    arange = torch.arange(mask.shape[1], device=mask.device)
    if not torch.equal(mask, arange.unsqueeze(0) < lengths.unsqueeze(1)):
        return None
    cu = torch.zeros(lengths.numel() + 1, dtype=torch.int32, device=mask.device)
    cu[1:] = lengths.cumsum(0)
    positions = arange.unsqueeze(0).expand_as(mask)[mask].unsqueeze(0)
    return input_ids[mask].unsqueeze(0), positions, cu, int(lengths.max()), mask
