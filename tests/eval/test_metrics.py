import math

import pytest

from llmloop.eval import text_metrics as M


def test_exact_match_normalises_case_punctuation_articles():
    assert M.exact_match(["The Answer!", "北京。", "no"], ["answer", "北京", "yes"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="references"):
        M.exact_match(["a"], ["a", "b"])


def test_accuracy_and_macro_f1_against_hand_computed_values():
    pred = ["pos", "pos", "neg", "neg", "neu"]
    gold = ["pos", "neg", "neg", "neg", "pos"]
    assert M.accuracy(pred, gold) == pytest.approx(3 / 5)
    # pos: tp1 fp1 fn1 → 0.5; neg: tp2 fp0 fn1 → 0.8; neu: tp0 → 0
    assert M.macro_f1(pred, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert M.macro_f1(gold, gold) == 1.0


def test_bleu_uses_sacrebleu_and_chinese_tokenisation():
    import sacrebleu

    assert M.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    hyp, ref = ["the cat is on the mat"], ["the cat sat on the mat"]
    assert M.bleu(hyp, ref) == pytest.approx(sacrebleu.corpus_bleu(hyp, [ref]).score)
    zh_h, zh_r = ["您可以在我的订单中查看物流"], ["您可以在我的订单里查看物流信息"]
    # without Chinese tokenisation the whole sentence is one token and BLEU is 0
    assert sacrebleu.corpus_bleu(zh_h, [zh_r], tokenize="13a").score == 0.0
    assert M.bleu(zh_h, zh_r) == pytest.approx(sacrebleu.corpus_bleu(zh_h, [zh_r], tokenize="zh").score)
    assert M.bleu(zh_h, zh_r) > 20


def test_rouge_counts_chinese_characters():
    r = M.rouge(["我的订单在哪里"], ["我的订单在哪"])
    # 6 shared unigrams: P=6/7, R=1 → F=12/13; bigrams 5 of 6 and 5 → F=10/11
    assert r["rouge1"] == pytest.approx(12 / 13)
    assert r["rouge2"] == pytest.approx(10 / 11)
    assert r["rougeL"] == pytest.approx(12 / 13)
    en = M.rouge(["the cat sat"], ["the cat sat down"])
    assert en["rouge1"] == pytest.approx(2 * 0.75 / 1.75)
    assert M.rouge(["完全不同"], ["毫无关系"])["rouge1"] == 0.0


@pytest.mark.parametrize("text, value", [
    ("So 3 + 4 = 7. The answer is 7.", 7),
    ("We get \\boxed{\\frac{3}{4}} in the end, not 5", 0.75),
    ("first 10 then \\boxed{1,234}", 1234),
    ("The answer is 1,250,000 dollars and 3 cents", 1250000),
    ("增长了 25%", 0.25),
    ("答案是 -3.5，因为 2 小于 4", -3.5),
    ("Half is 1/2", 0.5),
    ("#### 42", 42),
    ("42 apples, then 18 left", 18),
    ("no digits here", None),
])
def test_extract_number(text, value):
    got = M.extract_number(text)
    assert got == (None if value is None else pytest.approx(value))


def test_math_accuracy():
    assert M.math_accuracy(["The answer is 12", "\\boxed{5}", "I think 3"], ["#### 12", 4, "3.0"]) == pytest.approx(2 / 3)


def test_perplexity_of_the_tiny_model(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    texts = ["Where is my order? You can track it under My Orders.", "Thanks."]
    ppl = M.perplexity(model, tok, texts, batch_size=2)
    # reference: per-text sums of token NLL, unbatched
    nll, n = 0.0, 0
    for t in texts:
        ids = tok(t, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss
        nll += float(loss) * (ids.shape[1] - 1)
        n += ids.shape[1] - 1
    assert ppl == pytest.approx(math.exp(nll / n), rel=1e-4)
    assert M.version_perplexity(str(tiny_model_dir), texts) == pytest.approx(ppl, rel=1e-4)
    # padding must not leak into the score: batched equals one text at a time
    assert M.perplexity(model, tok, texts, batch_size=1) == pytest.approx(ppl, rel=1e-4)
