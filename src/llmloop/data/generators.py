"""Who writes synthetic data: an LLM behind any OpenAI-compatible endpoint, or offline templates.

Both implement ``Generator``: four small operations the pipelines in ``data.generate`` combine.
``LLMGenerator`` turns each into a prompt (Self-Instruct's and WizardLM's Evol-Instruct prompts,
shortened) and sends it through the ``openai`` client, which retries timeouts, connection errors,
429 and 5xx with exponential backoff (``max_retries``). ``TemplateGenerator`` needs no model: it
recombines words of the seed instructions with per-task-type templates, deterministically from a
random seed, so demos and tests run offline and reproducibly.
"""

from __future__ import annotations

import os
import random
import re
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

TASK_TYPES = ("classification", "generation", "summarization", "qa", "rewrite", "reasoning")
EVOL_OPS = ("deepen", "broaden", "concretize", "complexify")

_TASK_HINTS = {
    "classification": "a classification task (the user asks to label or categorise something)",
    "generation": "an open generation task (write something new)",
    "summarization": "a summarization task (it includes the text to summarise)",
    "qa": "a factual question",
    "rewrite": "a rewriting task (it includes the text to rewrite and how)",
    "reasoning": "a task that needs several steps of reasoning",
}
_EVOL_HINTS = {  # WizardLM's in-depth evolving operations
    "deepen": "Increase the depth and breadth of the inquiry so that it asks about underlying causes or principles.",
    "broaden": "Write a new instruction in the same domain but about a different, rarer topic.",
    "concretize": "Replace general concepts with more specific ones (names, numbers, a concrete situation).",
    "complexify": "Add one more constraint or requirement the answer must satisfy.",
}


class Generator(Protocol):
    name: str

    def new_instruction(self, examples: list[str], task_type: str, rng: random.Random) -> str: ...

    def answer(self, instruction: str, rng: random.Random) -> str: ...

    def evolve(self, instruction: str, op: str, rng: random.Random) -> str: ...

    def paraphrase(self, text: str, rng: random.Random, pivot: str | None = None) -> str: ...


def first_line(text: str) -> str:
    """The instruction in a model's reply: the first non-empty line, without numbering, labels or quotes."""
    for line in text.strip().splitlines():
        line = re.sub(r"^\s*(\d+[.)]|[-*•]|#+|(new )?(instruction|rewritten (prompt|instruction)|task)\s*:)\s*",
                      "", line.strip(), flags=re.I).strip().strip('"“”')
        if line:
            return line
    return ""


class LLMGenerator:
    """Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llmloop's own gateway …)."""

    def __init__(self, *, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY",
                 temperature: float = 0.7, max_tokens: int = 256, timeout_s: float = 60.0,
                 max_retries: int = 4) -> None:
        from openai import OpenAI

        key = os.environ.get(api_key_env) if api_key_env else None
        # A local gateway without auth takes any key; the client insists on one.
        self.client = OpenAI(base_url=base_url, api_key=key or "not-needed", timeout=timeout_s,
                             max_retries=max_retries)
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.name = f"openai:{model}@{base_url}"

    def _chat(self, prompt: str, rng: random.Random) -> str:
        r = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=self.temperature,
            max_tokens=self.max_tokens, seed=rng.randrange(2**31))
        return (r.choices[0].message.content or "").strip()

    def new_instruction(self, examples: list[str], task_type: str, rng: random.Random) -> str:
        shown = "\n".join(f"{i}. {e}" for i, e in enumerate(examples, start=1))
        prompt = (f"Here are example instructions a user gave an assistant:\n{shown}\n\n"
                  f"Write one new, different instruction: {_TASK_HINTS[task_type]}. "
                  "Reply with the instruction only, on one line.")
        return first_line(self._chat(prompt, rng))

    def answer(self, instruction: str, rng: random.Random) -> str:
        return self._chat(instruction, rng)

    def evolve(self, instruction: str, op: str, rng: random.Random) -> str:
        prompt = (f"Rewrite the instruction below into a more difficult version. {_EVOL_HINTS[op]} "
                  "The rewritten instruction must stay reasonable and answerable by a human. "
                  f"Reply with the rewritten instruction only.\n\nInstruction: {instruction}")
        return first_line(self._chat(prompt, rng))

    def paraphrase(self, text: str, rng: random.Random, pivot: str | None = None) -> str:
        if pivot:  # back-translation: to the pivot language and back
            there = self._chat(f"Translate into {pivot}. Reply with the translation only.\n\n{text}", rng)
            return first_line(self._chat(f"Translate into the language of this example: {text[:40]!r}. "
                                         f"Reply with the translation only.\n\n{there}", rng))
        return first_line(self._chat("Paraphrase the instruction below: same meaning, different wording. "
                                     f"Reply with the paraphrase only.\n\nInstruction: {text}", rng))


_STOP = set("a an the of to in on for and or is are be with by as at from that this it what how why which "
            "please can you your me my i we our do does give write explain".split())
_TEMPLATES = {
    "classification": ["Classify the following as positive or negative: \"{a} {b}\".",
                       "Is \"{a}\" a kind of {b}? Answer yes or no.",
                       "Label this request by topic ({a}, {b} or other): \"{c} {a}\"."],
    "generation": ["Write a short note to a customer about {a} and {b}.",
                   "Draft a friendly message explaining {a}.",
                   "Write three tips about {a} for someone new to {b}."],
    "summarization": ["Summarise in one sentence: \"{a} is linked to {b}, and {c} depends on both.\"",
                      "Give a one-line summary of a policy about {a} and {c}."],
    "qa": ["What is the difference between {a} and {b}?", "How does {a} affect {c}?",
           "When should I check my {a}?"],
    "rewrite": ["Rewrite more politely: \"Your {a} is late because of {b}.\"",
                "Rewrite for a child: \"{a} requires {b}.\""],
    "reasoning": ["If {a} takes 3 days and {b} takes twice as long, how many days do both take?",
                  "A customer has 2 {a} and orders 5 more {b}; how many items will arrive?"],
}
_EVOL_TEMPLATES = {
    "deepen": "{x} Explain the reasons behind your answer.",
    "broaden": "{x} Also say how this applies to {w}.",
    "concretize": "{x} Use a concrete example with {w} and a number.",
    "complexify": "{x} Answer in at most three sentences and mention {w}.",
}
_PARAPHRASE = ["Could you tell me: {x}", "I'd like to know this. {x}", "{x} Thanks!", "Quick question: {x}",
               "Please help with the following. {x}"]


class TemplateGenerator:
    """Offline and deterministic: recombines the seeds' words with templates (for demos and tests)."""

    name = "template"

    def __init__(self, vocabulary: list[str] | None = None) -> None:
        self.vocabulary = vocabulary or ["order", "refund", "delivery", "account", "invoice", "warranty"]

    @staticmethod
    def words_of(texts: list[str]) -> list[str]:
        found = []
        for t in texts:
            for w in re.findall(r"[A-Za-z][A-Za-z-]{2,}|[\u3400-\u9fff]{2,4}", t):
                if w.lower() not in _STOP and w not in found:
                    found.append(w.lower() if w.isascii() else w)
        return found

    def _words(self, examples: list[str], rng: random.Random, k: int = 3) -> list[str]:
        pool = self.words_of(examples) or self.vocabulary
        return [rng.choice(pool) for _ in range(k)]

    def new_instruction(self, examples: list[str], task_type: str, rng: random.Random) -> str:
        a, b, c = self._words(examples, rng)
        return rng.choice(_TEMPLATES[task_type]).format(a=a, b=b, c=c)

    def answer(self, instruction: str, rng: random.Random) -> str:
        words = self._words([instruction], rng, 2)
        return (f"Here is a clear answer. Regarding {words[0]}: check the details in your account, "
                f"then contact support about {words[1]} if anything is unclear.")

    def evolve(self, instruction: str, op: str, rng: random.Random) -> str:
        (w,) = self._words([instruction], rng, 1)
        return _EVOL_TEMPLATES[op].format(x=instruction.rstrip(), w=w)

    def paraphrase(self, text: str, rng: random.Random, pivot: str | None = None) -> str:
        return rng.choice(_PARAPHRASE).format(x=text.strip())


class GeneratorConfig(BaseModel):
    """Which generator writes the data (``--generator`` and the endpoint flags)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["openai", "template"] = Field("openai", description="openai: any OpenAI-compatible endpoint; "
                                                "template: offline templates (demos, tests)")
    base_url: str | None = Field(None, description="Endpoint base URL with /v1, e.g. http://127.0.0.1:8000/v1 "
                                 "(llmloop's gateway) or https://api.openai.com/v1")
    model: str | None = Field(None, description="Model name sent with each request (for the gateway: a version, "
                              "an alias such as production, or a routing name)")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Environment variable holding the API key "
                                    "(unset is fine for a gateway without auth)")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature")
    max_tokens: int = Field(256, ge=1, description="Longest reply per request")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds")
    max_retries: int = Field(4, ge=0, description="Retries per request, with exponential backoff (timeouts, "
                             "connection errors, 429, 5xx)")

    @model_validator(mode="after")
    def _endpoint(self) -> "GeneratorConfig":
        if self.kind == "openai" and not (self.base_url and self.model):
            raise ValueError("--generator openai needs --base-url and --model (or use --generator template offline)")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url must start with http:// or https:// (got {self.base_url!r})")
        return self

    def build(self) -> Generator:
        if self.kind == "template":
            return TemplateGenerator()
        return LLMGenerator(base_url=self.base_url or "", model=self.model or "", api_key_env=self.api_key_env,
                            temperature=self.temperature, max_tokens=self.max_tokens, timeout_s=self.timeout_s,
                            max_retries=self.max_retries)
