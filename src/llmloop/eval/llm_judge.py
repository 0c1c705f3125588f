"""LLM-as-judge (E2) through any OpenAI-compatible ``/chat/completions`` endpoint (our gateway too).

Two modes:
* pointwise rubric — accuracy, relevance, fluency, professionalism, each 1–5, plus a reason;
* pairwise — the judge sees both answers twice, once in each order; the orders must agree or the
  pair is a tie (position bias cancels instead of deciding).

Contract: the judge's reply must contain one JSON object that validates against ``RubricScores`` /
``PairChoice``. A reply that does not is sent back once per retry with the validation error and a
request for just the JSON (repair), and transport failures (timeouts, 5xx, connection errors) are
retried too. When the attempts run out the sample is *failed* with the reason — never an exception
— so a run always completes and its report counts the failures. The prompts are templates with
``{{question}}``, ``{{answer}}``, ``{{answer_a}}``, ``{{answer_b}}`` (and ``{{reference}}``)
placeholders; ``JudgeTemplates.from_file`` reads a team's own from YAML/JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmloop.errors import LlmloopError
from llmloop.eval import EvalInputError
from llmloop.eval.verdict import Verdict

CRITERIA = ("accuracy", "relevance", "fluency", "professionalism")

POINTWISE_TEMPLATE = """You are a strict reviewer of a customer-facing assistant.
Rate the answer to the user's question on four criteria, each an integer from 1 (bad) to 5 (excellent):
accuracy (is it correct{{reference_hint}}), relevance (does it address the question), fluency (is it well written),
professionalism (tone and helpfulness).

Question:
{{question}}
{{reference_block}}
Answer:
{{answer}}

Reply with only a JSON object, no other text:
{"accuracy": 1-5, "relevance": 1-5, "fluency": 1-5, "professionalism": 1-5, "reason": "one or two sentences"}"""

PAIRWISE_TEMPLATE = """You are a strict reviewer comparing two answers to the same user question.
Decide which answer is better overall (correct, relevant, fluent, professional). Do not let the order
or the length of the answers influence you.

Question:
{{question}}

Answer A:
{{answer_a}}

Answer B:
{{answer_b}}

Reply with only a JSON object, no other text:
{"winner": "A" or "B" or "tie", "reason": "one or two sentences"}"""

REPAIR_MESSAGE = ("Your reply could not be used: {error}. Reply again with only the JSON object described "
                  "above, nothing before or after it.")


class RubricScores(BaseModel):
    model_config = ConfigDict(extra="ignore")
    accuracy: int = Field(ge=1, le=5)
    relevance: int = Field(ge=1, le=5)
    fluency: int = Field(ge=1, le=5)
    professionalism: int = Field(ge=1, le=5)
    reason: str = ""

    @property
    def mean(self) -> float:
        return sum(getattr(self, c) for c in CRITERIA) / len(CRITERIA)


class PairChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    winner: Literal["A", "B", "tie"]
    reason: str = ""


class JudgeEndpoint(BaseModel):
    """Where the judge model lives and how hard to try."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(description="OpenAI-compatible base URL including /v1, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="Model name sent in each request")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key (sent as Bearer)")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds")
    attempts: int = Field(3, ge=1, description="Tries per judgement (transport errors and unusable JSON both count)")
    temperature: float = Field(0.0, ge=0, description="Judge sampling temperature")
    max_tokens: int = Field(256, ge=1, description="Longest judge reply")
    concurrency: int = Field(4, ge=1, description="Judgements in flight at once")


@dataclass(frozen=True)
class JudgeTemplates:
    pointwise: str = POINTWISE_TEMPLATE
    pairwise: str = PAIRWISE_TEMPLATE

    @classmethod
    def from_file(cls, path: str | Path) -> "JudgeTemplates":
        """YAML or JSON with ``pointwise`` and/or ``pairwise`` keys; missing keys keep the defaults."""
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise EvalInputError(f"judge templates {path}: cannot read ({e})") from e
        if not isinstance(raw, dict) or set(raw) - {"pointwise", "pairwise"}:
            raise EvalInputError(f"judge templates {path}: expected a mapping with keys 'pointwise' and/or 'pairwise', "
                             f"got {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}")
        t = cls(**{k: str(v) for k, v in raw.items()})
        if "{{answer_a}}" not in t.pairwise or "{{answer_b}}" not in t.pairwise:
            raise EvalInputError(f"judge templates {path}: the pairwise template needs {{{{answer_a}}}} and {{{{answer_b}}}}")
        if "{{answer}}" not in t.pointwise:
            raise EvalInputError(f"judge templates {path}: the pointwise template needs {{{{answer}}}}")
        return t


def render(template: str, **values: str) -> str:
    """Replace ``{{name}}`` placeholders (JSON braces in the template are left alone)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values.get(m.group(1), m.group(0)), template)


def question_text(messages: list[dict[str, Any]]) -> str:
    """The conversation as the judge reads it: the last user turn, earlier turns as context."""
    if len(messages) == 1:
        return str(messages[0].get("content", ""))
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


def extract_json(text: str) -> Any:
    """The first JSON object in ``text`` (code fences and chatter around it are ignored)."""
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            return obj
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    raise ValueError(f"no JSON object in the reply {text[:120]!r}")


class JudgeFailed(LlmloopError):
    """A judgement that could not be had; the message is the reason recorded on the sample."""


class ChatClient:
    """The smallest OpenAI-compatible chat client: one POST, an error string on failure."""

    def __init__(self, endpoint: JudgeEndpoint) -> None:
        import httpx

        key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
        if endpoint.api_key_env and not key:
            raise EvalInputError(f"judge API key: environment variable {endpoint.api_key_env} is not set")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.endpoint = endpoint
        self.http = httpx.Client(base_url=endpoint.base_url.rstrip("/"), headers=headers, timeout=endpoint.timeout_s)

    def chat(self, messages: list[dict[str, str]]) -> str:
        import httpx

        e = self.endpoint
        try:
            r = self.http.post("/chat/completions", json={"model": e.model, "messages": messages,
                                                          "temperature": e.temperature, "max_tokens": e.max_tokens})
        except httpx.TimeoutException:
            raise JudgeFailed(f"timeout after {e.timeout_s:g} s") from None
        except httpx.HTTPError as err:
            raise JudgeFailed(f"{type(err).__name__}: {err}") from None
        if r.status_code != 200:
            raise JudgeFailed(f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            return str(r.json()["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeFailed(f"not an OpenAI chat completion: {r.text[:200]!r}") from None

    def close(self) -> None:
        self.http.close()


def ask_json(client: ChatClient, prompt: str, schema: type[BaseModel], attempts: int) -> BaseModel:
    """Ask, validate, repair: bad JSON goes back to the judge with the error; raises ``JudgeFailed``."""
    messages = [{"role": "user", "content": prompt}]
    reasons = []
    for _ in range(attempts):
        try:
            reply = client.chat(messages)
        except JudgeFailed as e:
            reasons.append(str(e))
            continue
        try:
            return schema.model_validate(extract_json(reply))
        except (ValueError, ValidationError) as e:
            error = str(e).splitlines()[0] if not isinstance(e, ValidationError) else \
                "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            reasons.append(f"unusable reply ({error})")
            messages = messages[:1] + [{"role": "assistant", "content": reply},
                                       {"role": "user", "content": REPAIR_MESSAGE.format(error=error)}]
    raise JudgeFailed(f"{attempts} attempts failed: " + " | ".join(reasons))


@dataclass(frozen=True)
class PointwiseResult:
    question: str
    answer: str
    scores: RubricScores | None
    error: str = ""


@dataclass(frozen=True)
class PointwiseReport:
    judge: str
    n: int
    failed: int
    means: dict[str, float]  # per criterion and "overall", over the samples that were judged
    results: list[PointwiseResult]

    @property
    def failure_reasons(self) -> list[str]:
        return [r.error for r in self.results if r.scores is None]


class LLMJudge:
    """Pairwise (``judge``, a ``PairwiseJudge``) and pointwise (``score``) judge over an endpoint."""

    def __init__(self, endpoint: JudgeEndpoint, templates: JudgeTemplates | None = None) -> None:
        self.endpoint = endpoint
        self.templates = templates or JudgeTemplates()
        self.client = ChatClient(endpoint)
        self.name = f"llm:{endpoint.model}@{endpoint.base_url}"

    # -- pairwise --------------------------------------------------------------------------------
    def _choice(self, question: str, first: str, second: str) -> PairChoice:
        prompt = render(self.templates.pairwise, question=question, answer_a=first, answer_b=second)
        return ask_json(self.client, prompt, PairChoice, self.endpoint.attempts)  # type: ignore[return-value]

    def judge(self, messages: list[dict[str, Any]], answer_x: str, answer_y: str) -> Verdict:
        """Both orders; agreement wins, disagreement ties; any failed order fails the sample."""
        q = question_text(messages)
        try:
            fwd = self._choice(q, answer_x, answer_y)
            rev = self._choice(q, answer_y, answer_x)
        except JudgeFailed as e:
            return Verdict("failed", str(e))
        first = {"A": "x", "B": "y", "tie": "tie"}[fwd.winner]
        second = {"A": "y", "B": "x", "tie": "tie"}[rev.winner]
        if first == second:
            return Verdict(first, fwd.reason)  # type: ignore[arg-type]
        return Verdict("tie", f"orders disagree (x first: {first}; y first: {second}): {fwd.reason} / {rev.reason}")

    def judge_batch(self, items: Sequence[tuple[list[dict[str, Any]], str, str]]) -> list[Verdict]:
        with ThreadPoolExecutor(self.endpoint.concurrency) as pool:
            return list(pool.map(lambda it: self.judge(*it), items))

    # -- pointwise -------------------------------------------------------------------------------
    def score_one(self, messages: list[dict[str, Any]], answer: str, reference: str | None = None) -> PointwiseResult:
        q = question_text(messages)
        prompt = render(self.templates.pointwise, question=q, answer=answer,
                        reference=reference or "",
                        reference_hint=", judged against the reference answer" if reference else "",
                        reference_block=f"\nReference answer:\n{reference}\n" if reference else "")
        try:
            return PointwiseResult(q, answer, ask_json(self.client, prompt, RubricScores, self.endpoint.attempts))  # type: ignore[arg-type]
        except JudgeFailed as e:
            return PointwiseResult(q, answer, None, str(e))

    def score(self, items: Sequence[tuple[list[dict[str, Any]], str]], references: Sequence[str | None] | None = None) -> PointwiseReport:
        refs = list(references) if references is not None else [None] * len(items)
        with ThreadPoolExecutor(self.endpoint.concurrency) as pool:
            results = list(pool.map(lambda a: self.score_one(a[0][0], a[0][1], a[1]), zip(items, refs)))
        ok = [r.scores for r in results if r.scores is not None]
        means = {c: sum(getattr(s, c) for s in ok) / len(ok) for c in CRITERIA} if ok else {}
        if ok:
            means["overall"] = sum(s.mean for s in ok) / len(ok)
        return PointwiseReport(self.name, len(results), len(results) - len(ok), means, results)

    def close(self) -> None:
        self.client.close()


def llm_judge_from_spec(spec: str, api_key_env: str | None = None, templates: str | Path | None = None,
                        timeout_s: float = 60.0, attempts: int = 3) -> LLMJudge:
    """``openai:MODEL@BASE_URL`` → ``LLMJudge``; ValueError shows the expected form."""
    model, at, base_url = spec.removeprefix("openai:").partition("@")
    if not (spec.startswith("openai:") and model and at and base_url.startswith(("http://", "https://"))):
        raise EvalInputError(f"judge {spec!r}: write 'openai:MODEL@BASE_URL', e.g. openai:gpt-4o-mini@https://api.openai.com/v1 "
                         "or openai:production@http://127.0.0.1:8000/v1 (our own gateway)")
    return LLMJudge(JudgeEndpoint(base_url=base_url, model=model, api_key_env=api_key_env, timeout_s=timeout_s,
                                  attempts=attempts),
                    JudgeTemplates.from_file(templates) if templates else None)
