"""Padding-free DPO (train/unpad.py): the unpadded decoder must compute exactly what the padded one
does. The model-level checks run on the CPU too (SDPA with packed position ids is correct there,
only slower); the trainer-level check needs CUDA and the varlen kernel (marked ``gpu``)."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")


def tiny_lora_model(attn: str = "sdpa", device: str = "cpu", dtype=None):  # noqa: ANN001, ANN201
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    config._attn_implementation = attn
    model = Qwen2ForCausalLM(config).to(device=device, dtype=dtype or torch.float32)
    add_fused_lm_head(model)  # what DPOTrainer does before training
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                             init_lora_weights=False))  # non-zero B: the adapter changes outputs
    return model


def padded_pairs(lengths: list[int], prompt: list[int], device: str = "cpu"):  # noqa: ANN201
    """A right-padded batch like TRL's DataCollatorForPreference makes: ids, attention mask, labels
    (completion tokens only; -100 on the prompt and the padding)."""
    gen = torch.Generator().manual_seed(sum(lengths))
    longest = max(lengths)
    ids = torch.zeros(len(lengths), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, (n, p) in enumerate(zip(lengths, prompt, strict=True)):
        ids[row, :n] = torch.randint(3, 97, (n,), generator=gen)
        mask[row, :n] = 1
        labels[row, p:n] = ids[row, p:n]
    return ids.to(device), mask.to(device), labels.to(device)


def fused_log_probs(model, ids, mask, labels):  # noqa: ANN001, ANN201
    return model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True, use_cache=False).log_probs


def test_unpadded_decoder_gives_the_same_log_probs_and_gradients():
    from llmloop.train.unpad import unpad_backbone

    padded = tiny_lora_model()
    unpadded = copy.deepcopy(padded)
    assert unpad_backbone(unpadded) is True
    assert unpad_backbone(unpadded) is False  # idempotent
    ids, mask, labels = padded_pairs([7, 19, 4, 12], [2, 5, 1, 12])  # the last row: prompt only
    lp_ref = fused_log_probs(padded, ids, mask, labels)
    lp = fused_log_probs(unpadded, ids, mask, labels)
    assert lp.shape == lp_ref.shape == (4, 18)
    assert torch.allclose(lp, lp_ref, atol=1e-5), (lp - lp_ref).abs().max()
    assert (lp[labels[:, 1:] == -100] == 0).all()  # padding and prompt positions score nothing
    # per-sequence sums (what the DPO loss uses) and the gradients they give the adapter
    lp_ref.sum(dim=1).pow(2).sum().backward()
    lp.sum(dim=1).pow(2).sum().backward()
    grads_ref = {n: p.grad for n, p in padded.named_parameters() if p.requires_grad}
    grads = {n: p.grad for n, p in unpadded.named_parameters() if p.requires_grad}
    assert grads.keys() == grads_ref.keys() and grads
    for name, g in grads.items():
        assert torch.allclose(g, grads_ref[name], atol=1e-4, rtol=1e-3), name


def test_the_reference_pass_with_the_adapter_disabled_is_unpadded_too():
    from llmloop.train.unpad import unpad_backbone

    padded = tiny_lora_model()
    unpadded = copy.deepcopy(padded)
    unpad_backbone(unpadded)
    ids, mask, labels = padded_pairs([9, 3, 14], [3, 1, 6])
    with torch.no_grad(), padded.disable_adapter(), unpadded.disable_adapter():
        a, b = fused_log_probs(padded, ids, mask, labels), fused_log_probs(unpadded, ids, mask, labels)
    assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(fused_log_probs(unpadded, ids, mask, labels), b, atol=1e-3)  # adapter on differs


def test_left_padded_batches_and_generation_run_the_original_forward():
    from llmloop.train.unpad import flatten, unpad_backbone

    ids, mask, _ = padded_pairs([5, 3], [1, 1])
    left = mask.flip(1)
    assert flatten(ids, left) is None
    flat = flatten(ids, mask)
    assert flat is not None
    flat_ids, positions, cu, longest, _ = flat
    assert flat_ids.shape == (1, 8) and positions.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]
    assert cu.tolist() == [0, 5, 8] and longest == 5
    model = tiny_lora_model()
    unpad_backbone(model)
    out = model.generate(input_ids=ids[:1, :5], attention_mask=mask[:1, :5], max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 8)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
def test_varlen_unpadded_decoder_matches_padded_sdpa_in_bf16():
    from llmloop.train.speed import VARLEN, register_varlen_attention, varlen_kernel_available
    from llmloop.train.unpad import unpad_backbone

    if not varlen_kernel_available():
        pytest.skip("needs the varlen kernel")
    register_varlen_attention()
    padded = tiny_lora_model("sdpa", "cuda", torch.bfloat16)
    unpadded = copy.deepcopy(padded)
    unpadded.base_model.model.set_attn_implementation(VARLEN)
    unpad_backbone(unpadded)
    ids, mask, labels = padded_pairs([40, 130, 7, 61], [10, 30, 2, 20], "cuda")
    with torch.no_grad():
        a, b = fused_log_probs(padded, ids, mask, labels), fused_log_probs(unpadded, ids, mask, labels)
    rel = (a.float() - b.float()).norm() / a.float().norm()
    assert rel < 2e-2, rel


@pytest.mark.gpu
@cuda
def test_padding_free_dpo_trainer_logs_the_same_log_probs_as_padded(tmp_path):
    """The whole DPO recipe on a GPU, padded (speed.padding_free false) vs padding-free (default):
    the first step's chosen/rejected log-probs agree."""
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    from llmloop.train import dpo
    from llmloop.train.recipe_base import StartingModel
    from llmloop.train.config import DPOConfig

    words = 200
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{f"w{i}": i + 3 for i in range(words)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>").save_pretrained(
        tmp_path / "tok")
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=words + 3, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path / "m")
    gen = torch.Generator().manual_seed(1)

    def text(n: int) -> str:
        return " ".join(f"w{int(i)}" for i in torch.randint(0, words, (n,), generator=gen))

    rows = [{"prompt": text(5 + 7 * i), "chosen": " " + text(3 + 5 * i), "rejected": " " + text(40 - 4 * i)}
            for i in range(8)]
    logged = {}
    for name, padding_free in (("padded", False), ("unpadded", None)):
        config = DPOConfig(model=str(tmp_path / "m"), dataset="t", tokenizer=str(tmp_path / "tok"), finetuning="lora",
                           max_length=256, per_device_train_batch_size=8, max_steps=1, logging_steps=1,
                           plot_loss=False, learning_rate=1e-4,
                           speed={"padding_free": padding_free, "auto_find_batch_size": False,
                                  "liger_kernel": False, "group_by_length": False})
        trainer = dpo.build_trainer(config, StartingModel("m", str(tmp_path / "m")), Dataset.from_list(rows),
                                    tmp_path / name, [])
        assert trainer.model.config._attn_implementation == ("sdpa" if name == "padded" else "llmloop_varlen")
        trainer.train()
        logged[name] = next(h for h in trainer.state.log_history if "logps/chosen" in h)
    for key in ("logps/chosen", "logps/rejected"):
        a, b = logged["padded"][key], logged["unpadded"][key]
        assert abs(a - b) <= 0.02 * abs(a), (key, a, b)
