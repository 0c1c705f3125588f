"""Row layouts for the TRL, OpenAI and Hugging Face ``datasets`` export targets (D11).

* TRL, ``conversational`` style: sft ``{"messages"}``; preference ``{"prompt", "chosen",
  "rejected"}`` as message lists; pt ``{"text"}``. ``plain`` style: sft ``{"prompt",
  "completion"}`` strings and preference ``{"prompt", "chosen", "rejected"}`` strings — only for
  single-turn rows without a system message or tools (anything else would lose information, so it is
  refused with the row number and the fix: use the conversational style).
* OpenAI: sft → chat fine-tuning ``{"messages"}`` (tool calls as ``tool_calls``, tool results as
  ``role: tool`` with the call's id); preference → its DPO form ``{"input": {"messages"},
  "preferred_output": [msg], "non_preferred_output": [msg]}``. pt has no OpenAI format.
"""

from __future__ import annotations

import json
from typing import Any

from llmloop.data.rows import DataError


def one_reply(rows: list[dict[str, Any]], target: str, instead: str) -> None:
    """Refuse preference rows whose sides hold a conversation (a multi-turn arena battle's vote) for a
    format that holds one reply a side, instead of cutting the conversation short."""
    for i, r in enumerate(rows, start=1):
        if len(r["chosen"]) > 1 or len(r["rejected"]) > 1:
            raise DataError(f"row {i} is a multi-turn pair ({len(r['chosen'])} chosen messages: a vote on a battle "
                            f"that went on past its first turn), which {target} cannot hold (one reply a side); "
                            f"export with {instead}, or filter the version to one-turn pairs")

STYLES = ("conversational", "plain")


def _single_turn(kind: str, i: int, prompt: list[dict[str, Any]]) -> str:
    if len(prompt) != 1 or prompt[0]["role"] != "user":
        roles = [m["role"] for m in prompt]
        raise DataError(f"row {i}: the plain TRL style holds one user turn, this {kind} row's prompt has roles "
                        f"{roles}; export with --style conversational")
    return prompt[0]["content"]


def trl_rows(kind: str, rows: list[dict[str, Any]], style: str = "conversational") -> list[dict[str, Any]]:
    if style not in STYLES:
        raise DataError(f"unknown --style {style!r}; use {' or '.join(STYLES)}")
    if kind == "pt":
        return [{"text": r["text"]} for r in rows]
    out = []
    for i, r in enumerate(rows, start=1):
        if style == "plain" and r.get("tools"):
            raise DataError(f"row {i} has tools, which the plain TRL style cannot hold; use --style conversational")
        if kind == "sft":
            if style == "conversational":
                out.append({"messages": r["messages"]})
                continue
            msgs = r["messages"]
            if len(msgs) != 2 or msgs[1]["role"] != "assistant":
                raise DataError(f"row {i}: the plain TRL style holds one prompt and one completion, this row has "
                                f"{len(msgs)} messages; export with --style conversational")
            out.append({"prompt": _single_turn(kind, i, msgs[:1]), "completion": msgs[1]["content"]})
        elif kind == "preference":
            if style == "conversational":
                out.append({"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]})
            else:
                one_reply([r], f"the plain TRL style (row {i})", "--style conversational")
                out.append({"prompt": _single_turn(kind, i, r["prompt"]), "chosen": r["chosen"][0]["content"],
                            "rejected": r["rejected"][0]["content"]})
        elif kind == "prompt":  # TRL's GRPO/PPO layout: extra columns (solution) reach the reward functions
            prompt = r["prompt"] if style == "conversational" else _single_turn(kind, i, r["prompt"])
            out.append({"prompt": prompt, **({"solution": r["solution"]} if "solution" in r else {})})
        elif kind == "kto":
            if style == "conversational":
                out.append({"prompt": r["prompt"], "completion": r["completion"], "label": r["label"]})
            else:
                out.append({"prompt": _single_turn(kind, i, r["prompt"]), "completion": r["completion"][0]["content"],
                            "label": r["label"]})
        else:
            raise DataError(f"cannot export {kind!r} rows to TRL")
    return out


def _openai_messages(msgs: list[dict[str, Any]], row: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    call_ids: list[str] = []
    for m in msgs:
        role = m["role"]
        if role == "tool_call":
            calls = json.loads(m["content"])
            calls = calls if isinstance(calls, list) else [calls]
            call_ids = [f"call_{row}_{len(out)}_{k}" for k in range(len(calls))]
            out.append({"role": "assistant", "tool_calls": [
                {"id": cid, "type": "function", "function": {
                    "name": c["name"], "arguments": json.dumps(c.get("arguments", {}), ensure_ascii=False)}}
                for cid, c in zip(call_ids, calls, strict=True)]})
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": call_ids[0] if call_ids else f"call_{row}",
                        "content": m["content"]})
            call_ids = call_ids[1:]
        else:
            out.append({"role": role, "content": m["content"]})
    return out


def openai_rows(kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if kind == "pt":
        raise DataError("OpenAI fine-tuning has no format for pt (plain text) rows; export with --to trl or jsonl")
    out = []
    for i, r in enumerate(rows, start=1):
        if kind == "sft":
            row: dict[str, Any] = {"messages": _openai_messages(r["messages"], i)}
        elif kind == "preference":
            one_reply([r], f"OpenAI's preference fine-tuning format (row {i})", "--to trl (conversational) or jsonl")
            row = {"input": {"messages": _openai_messages(r["prompt"], i)},
                   "preferred_output": _openai_messages(r["chosen"], i),
                   "non_preferred_output": _openai_messages(r["rejected"], i)}
        else:
            raise DataError(f"cannot export {kind!r} rows to OpenAI's fine-tuning format")
        if r.get("tools"):
            tools = json.loads(r["tools"]) if isinstance(r["tools"], str) else r["tools"]
            target = row["input"] if kind == "preference" else row
            target["tools"] = [t if "type" in t else {"type": "function", "function": t} for t in tools]
        out.append(row)
    return out
