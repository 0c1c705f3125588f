"""Helpers for the surgery tests: random LoRA adapters and logits of a model folder."""

from __future__ import annotations

from pathlib import Path


def make_adapter(base: Path, out: Path, seed: int, r: int = 4, **kw) -> Path:
    """A LoRA adapter with random (non-zero) A and B, so merging it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM", **kw)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # init_lora_weights=False gives small B; scale up so the effect is visible
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.mul_(20)
    peft_model.save_pretrained(out)
    return out


def logits(model_dir: str | Path, text: str = "<|im_start|>user\n你好 hello<|im_end|>\n", adapter: str | Path | None = None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).eval()
    with torch.no_grad():
        return model(**tok(text, return_tensors="pt")).logits[0]
