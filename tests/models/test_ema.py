"""M4, per-step EMA inside a real TRL run: the saved EMA equals the recursion over every step's weights."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest
import torch

from llmloop.models.ema import EMACallback


@pytest.mark.slow
def test_ema_callback_in_an_sft_run(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(1)
    rows = [json.loads(line) for line in files("llmloop.resources").joinpath("demo/sft.jsonl").read_text(encoding="utf-8").splitlines()[:8]]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    seen: list[dict[str, torch.Tensor]] = []

    class Record(TrainerCallback):  # the trained weights after each step, for the reference below
        def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
            seen.append({n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad})

    d = 0.6
    ema = EMACallback(decay=d, out_dir=tmp_path / "ema", tokenizer=tok)
    args = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=4, learning_rate=5e-3, per_device_train_batch_size=4,
                     max_length=64, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False,
                     disable_tqdm=True)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(rows), peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                                       task_type="CAUSAL_LM"),
                         callbacks=[ema, Record()])
    start = {n: p.detach().float().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert ema.updates == 4 and len(seen) == 4
    ref = dict(start)
    for step in seen:
        ref = {n: d * ref[n] + (1 - d) * step[n] for n in ref}
    saved = load_file(tmp_path / "ema" / "adapter_model.safetensors")
    name = next(n for n in ref if "lora_B" in n)
    saved_name = name.replace(".default", "")
    assert torch.allclose(saved[saved_name], ref[name], atol=1e-6)
    assert not torch.allclose(ref[name], seen[-1][name])  # the EMA is not the last step's weights
    live = dict(trainer.model.named_parameters())[name]
    assert torch.equal(live.detach().float(), seen[-1][name])  # the model got its own weights back
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "ema")  # loads


def test_decay_is_checked():
    with pytest.raises(ValueError, match="decay"):
        EMACallback(decay=1.0)
