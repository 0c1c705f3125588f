"""Automatic metrics (E1): exact match, label accuracy/macro-F1, BLEU, ROUGE, perplexity, math answers.

Contract: every metric takes parallel lists of predictions and references (strings) and returns a
float on the 0–1 scale except BLEU, which keeps sacrebleu's 0–100 scale so numbers match papers.
BLEU is sacrebleu's corpus BLEU (``tokenize="zh"`` when the references contain CJK, else "13a");
ROUGE is Google's ``rouge-score`` with a tokenizer that splits CJK into characters, because its
default tokenizer drops every non-ASCII character and would score all Chinese text as 0.
sacrebleu, rouge-score and torch are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from llmloop.eval import EvalInputError

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_PUNCT = set(string.punctuation) | set("，。！？；：、“”‘’（）《》【】…—·")


def _check(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise EvalInputError(f"{len(predictions)} predictions but {len(references)} references: pass one reference per prediction")
    if not predictions:
        raise EvalInputError("a metric needs at least one prediction")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def normalize_answer(text: str) -> str:
    """SQuAD-style: NFKC, lower case, no punctuation (ASCII and CJK), no English articles, one space."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    _check(predictions, references)
    return sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references)) / len(predictions)


def accuracy(predictions: Sequence[str], labels: Sequence[str]) -> float:
    """Share of predicted labels equal to the gold label (stripped, case-insensitive)."""
    _check(predictions, labels)
    return sum(str(p).strip().lower() == str(g).strip().lower() for p, g in zip(predictions, labels)) / len(labels)


def macro_f1(predictions: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean of per-class F1 over the classes in the gold labels and the predictions."""
    _check(predictions, labels)
    preds = [str(p).strip().lower() for p in predictions]
    gold = [str(g).strip().lower() for g in labels]
    f1s = []
    for c in sorted(set(gold) | set(preds)):
        tp = sum(p == c and g == c for p, g in zip(preds, gold))
        fp = sum(p == c and g != c for p, g in zip(preds, gold))
        fn = sum(p != c and g == c for p, g in zip(preds, gold))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s)


def bleu(predictions: Sequence[str], references: Sequence[str], tokenize: str | None = None) -> float:
    """Corpus BLEU (0–100) via sacrebleu; ``tokenize`` defaults to "zh" for Chinese references."""
    import sacrebleu

    _check(predictions, references)
    tok = tokenize or ("zh" if any(has_cjk(r) for r in references) else "13a")
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=tok).score)


class CJKTokenizer:
    """rouge-score tokenizer: each CJK character is a token; other text splits into lower-cased words."""

    _TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]|[^\W_]+", re.UNICODE)

    def tokenize(self, text: str) -> list[str]:
        return [t.lower() for t in self._TOKEN.findall(unicodedata.normalize("NFKC", text))]


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean F-measure of ROUGE-1, ROUGE-2 and ROUGE-L (0–1) via rouge-score, CJK-aware."""
    from rouge_score import rouge_scorer

    _check(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=CJKTokenizer())
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for p, r in zip(predictions, references):
        for k, s in scorer.score(r, p).items():  # score(target, prediction)
            totals[k] += s.fmeasure
    return {k: v / len(predictions) for k, v in totals.items()}


# -- math answers --------------------------------------------------------------------------------
_NUM = r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?|-?\.\d+%?"


def _parse_number(raw: str) -> float | None:
    s = raw.strip().replace(",", "").replace(" ", "").rstrip(".")
    s = s.replace("\\%", "%").replace("$", "")
    frac = re.fullmatch(r"\\d?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", s)
    if frac:
        s = f"{frac.group(1)}/{frac.group(2)}"
    pct = s.endswith("%")
    s = s.rstrip("%")
    try:
        value = float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if pct else value


def _boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}``, braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_number(text: str) -> float | None:
    """The final numeric answer in a model's output, or None.

    Order: the last ``\\boxed{}``; then the number after "answer is" / "answer:" / "答案是" / "####";
    then the last number in the text. Commas are thousands separators, "x%" is x/100, "a/b" and
    ``\\frac{a}{b}`` are fractions.
    """
    boxed = _boxed(text)
    if boxed is not None:
        v = _parse_number(boxed)
        if v is not None:
            return v
        m = re.findall(r"\\d?frac\{-?[\d.]+\}\{-?[\d.]+\}|" + _NUM, boxed)
        return _parse_number(m[-1]) if m else None
    cue = re.findall(r"(?:answer\s*(?:is|:)|答案(?:是|为|：|:)|####)\s*\$?\s*(" + _NUM + ")", text, re.IGNORECASE)
    if cue:
        return _parse_number(cue[-1])
    nums = re.findall(r"\\d?frac\{-?[\d.]+\}\{-?[\d.]+\}|" + _NUM, text)
    return _parse_number(nums[-1]) if nums else None


def math_accuracy(predictions: Sequence[str], references: Sequence[str | float], rel_tol: float = 1e-6) -> float:
    """Share of outputs whose extracted number equals the reference's (references may be text or numbers)."""
    _check(predictions, references)
    hits = 0
    for p, r in zip(predictions, references):
        got = extract_number(p)
        want = float(r) if isinstance(r, (int, float)) else extract_number(str(r))
        hits += got is not None and want is not None and math.isclose(got, want, rel_tol=rel_tol, abs_tol=1e-9)
    return hits / len(predictions)


# -- perplexity ----------------------------------------------------------------------------------
def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int = 1024, batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood per predicted token) of a causal LM over ``texts``.

    Token-weighted over the whole set (not a mean of per-text perplexities), so long texts count
    in proportion to their length; texts longer than ``max_length`` tokens are truncated.
    """
    import torch

    if not texts:
        raise EvalInputError("perplexity needs at least one text")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    nll, count = 0.0, 0
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True,
                            truncation=True, max_length=max_length)
            ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            if tokenizer.pad_token_id is None:
                ids = ids.masked_fill(mask == 0, pad)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            m = mask[:, 1:].float()
            nll -= float((logp * m).sum())
            count += int(m.sum())
    finally:
        tokenizer.padding_side = side
    if count == 0:
        raise EvalInputError("perplexity: every text is shorter than two tokens")
    return math.exp(nll / count)


def version_perplexity(base_model: str, texts: Sequence[str], adapter_path: str | None = None,
                       device: str = "cpu", max_length: int = 1024) -> float:
    """Perplexity of a model version (base model path + optional LoRA adapter) on ``texts``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model).to(device).eval()
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path).eval()
    return perplexity(model, tok, texts, max_length=max_length)
