"""A tiny causal LM built offline in seconds: the model tests and the demo train.

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the texts given (by default the
demo corpus shipped in ``llmloop/resources/demo``), so Chinese and English both tokenize sensibly.
The model is a randomly initialised ``LlamaConfig`` network (not ``Qwen2Config``: its tokenizer class
would replace ours). The chat template is ChatML with ``{% generation %}`` markers around assistant
turns, so TRL's ``assistant_only_loss`` works; ``<|im_end|>`` ends a turn and stops generation.
The same seed and texts give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

IM_START, IM_END, EOS, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|pad|>"
SPECIAL_TOKENS = [EOS, IM_START, IM_END, PAD]

# ChatML. `{% generation %}` marks what the assistant wrote (for assistant-only loss); the closing
# <|im_end|> is inside the marker so the model learns to stop.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class TinyModelConfig(BaseModel):
    """Shape of the tiny model. The defaults train in seconds on two CPU cores."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(4096, description="BPE vocabulary size, special tokens included")
    hidden_size: int = Field(128, description="Width of the residual stream")
    intermediate_size: int = Field(384, description="Width of the MLP")
    num_hidden_layers: int = Field(4, description="Transformer blocks")
    num_attention_heads: int = Field(4, description="Query heads")
    num_key_value_heads: int = Field(2, description="Key/value heads (grouped-query attention)")
    max_position_embeddings: int = Field(1024, description="Longest sequence the model accepts")
    seed: int = Field(0, description="Seed for the weights (the tokenizer is deterministic)")


def default_texts() -> list[str]:
    """The demo's shipped corpus and instructions: what the default tokenizer is trained on."""
    from llmloop.resources import demo_texts

    return demo_texts()


def train_tokenizer(texts: Iterable[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        additional_special_tokens=[EOS, IM_START],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1024
    return fast


def build_tiny_model(
    out: str | Path, config: TinyModelConfig | None = None, texts: Iterable[str] | None = None
) -> Path:
    """Write tokenizer + randomly initialised Llama weights to ``out``; returns the directory."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    cfg = config or TinyModelConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts if texts is not None else default_texts(), cfg.vocab_size)
    im_end, eos, pad = (tokenizer.convert_tokens_to_ids(t) for t in (IM_END, EOS, PAD))
    model_cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=im_end,
        pad_token_id=pad,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(model_cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=[im_end, eos], pad_token_id=pad, do_sample=False, max_new_tokens=128
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "llmloop_tiny.json").write_text(json.dumps(cfg.model_dump(), indent=2, sort_keys=True))
    return out
