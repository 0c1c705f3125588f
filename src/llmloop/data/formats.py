"""Source formats → llmloop's canonical rows (``versions.CANONICAL``).

A ``Layout`` says where a row keeps its parts; it is LLaMA-Factory's ``dataset_info.json`` entry
(``formatting``, ``ranking``, ``columns``, ``tags``) generalised to the formats llmloop reads:

=========  ===========================================================  ==========================
format     row                                                          kind
=========  ===========================================================  ==========================
alpaca     instruction, input, output [, system, history]               sft
           instruction, input, chosen, rejected (strings)               preference
sharegpt   conversations: [{from, value}] (human/gpt/system/            sft
           function_call/observation) [, system, tools]
           + chosen/rejected message dicts                              preference
openai     messages: [{role, content}] (+ tool_calls, tool) [, tools]   sft; + chosen/rejected:
                                                                        preference
trl        prompt, chosen, rejected (strings or message lists)          preference
           chosen, rejected (conversations sharing the prompt)          preference
           prompt, completion (strings or message lists)                sft
kto        prompt, completion, label (TRL's unpaired layout), or        kto
           messages/conversations/alpaca columns + label (or kto_tag)
grpo       prompt (string or message list) [, solution | answer]        prompt
pt         text (.jsonl/.json/.csv/.parquet, or a .txt line)            pt
=========  ===========================================================  ==========================

Conversions follow LLaMA-Factory's converters where it has one, so a file means the same thing
here as there: alpaca's user turn is ``instruction + "\\n" + input`` (the empty part left out), a
system message or ``system`` column becomes the first message, and tool-use turns become
``tool_call`` / ``tool`` messages (see ``rows``). A ``tools`` column is kept on the row as a JSON
string (as LLaMA-Factory stores it). Extra columns are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmloop.data.rows import DataError, RowCheck, Sourced, check_conversation, check_reply, show

FORMATS = ("alpaca", "sharegpt", "openai", "trl", "kto", "grpo", "pt")
KTO_UNSUPPORTED = (
    "KTO data in this layout is not supported: llmloop reads KTO rows as TRL's prompt/completion/label, "
    "or as a messages/conversations list or alpaca columns plus a true/false 'label' (or kto_tag)"
)
# Columns a GRPO/PPO prompt row may carry its reference answer in (TRL reward functions read them).
SOLUTION_COLUMNS = ("solution", "answer", "ground_truth")
KTO_FIX = ("to use the label=true rows as SFT data, drop the label column and the label=false rows; "
           "to train DPO, pair good and bad answers to the same prompt as chosen/rejected")

# LLaMA-Factory's default sharegpt tags, and the OpenAI-style ones.
SHAREGPT_TAGS = {
    "role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
    "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system",
}
OPENAI_TAGS = {
    "role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
    "observation_tag": "tool", "function_tag": "tool_call", "system_tag": "system",
}
_TAG_ROLE = {"user_tag": "user", "assistant_tag": "assistant", "observation_tag": "tool",
             "function_tag": "tool_call", "system_tag": "system"}
# OpenAI's legacy function-result role; only where the tags say role/content.
_OPENAI_EXTRA_ROLES = {"function": "tool"}
# LLaMA-Factory joins consecutive OpenAI tool results into one observation with this separator.
TOOL_RESULT_SEPARATOR = "\n</tool_response>\n<tool_response>\n"

_NAMES = {"messages": "sharegpt/openai", "alpaca": "alpaca", "trl": "trl", "pt": "pt", "kto": "KTO",
          "grpo": "grpo (prompt only)", None: "nothing known"}
_EXPECTED = (
    "alpaca (instruction + output), sharegpt (conversations), openai (messages), "
    "trl (prompt + chosen/rejected, chosen/rejected, or prompt + completion), kto (prompt + completion + label), "
    "grpo (prompt [+ solution]), pt (text)"
)


class FormatError(DataError):
    """The rows fit no format, several, or one llmloop cannot store yet."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


@dataclass(frozen=True)
class Layout:
    """Where a row keeps its parts. ``columns`` maps a role in the row (LLaMA-Factory's names:
    prompt, query, response, history, system, tools, messages, chosen, rejected) to a column."""

    formatting: str  # one of FORMATS
    kind: str  # pt | sft | preference
    ranking: bool = False
    columns: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, str | None] = field(default_factory=dict)

    def col(self, key: str) -> str | None:
        return self.columns.get(key)


def _family(keys: set[str]) -> str | None:
    """The format family a row's keys point at, "ambiguous:…", "kto", or None."""
    found = []
    if keys & {"conversations", "messages"}:
        found.append("messages")
    if "instruction" in keys:
        found.append("alpaca")
    if "prompt" in keys and keys & {"chosen", "rejected", "completion"}:
        found.append("trl")
    elif not found and {"chosen", "rejected"} <= keys:
        found.append("trl")
    if "text" in keys and not found:
        found.append("pt")
    if not found and "prompt" in keys:
        found.append("grpo")
    if {"conversations", "messages"} <= keys:
        return "ambiguous:both 'conversations' and 'messages'"
    if len(found) > 1:
        return f"ambiguous:{' and '.join(found)}"
    if found and keys & {"label", "kto_tag"} and found[0] in ("messages", "trl", "alpaca"):
        if found[0] == "trl" and keys & {"chosen", "rejected"}:
            return "ambiguous:a KTO label next to chosen/rejected"
        return "kto"
    return found[0] if found else None


def _message_tags(rows: list[dict[str, Any]], column: str) -> dict[str, str | None]:
    """from/value (sharegpt) or role/content (openai), from the first message that says."""
    for row in rows:
        msgs = row.get(column)
        if isinstance(msgs, list):
            for m in msgs:
                if isinstance(m, dict) and "from" in m:
                    return dict(SHAREGPT_TAGS)
                if isinstance(m, dict) and "role" in m:
                    return dict(OPENAI_TAGS)
    return dict(SHAREGPT_TAGS if column == "conversations" else OPENAI_TAGS)


def check_format(fmt: str) -> str:
    if fmt not in ("auto", *FORMATS):
        raise DataError(f"unknown format {fmt!r}; pass --format auto or one of {', '.join(FORMATS)}")
    return fmt


def _kto_layout(first: set[str]) -> Layout:
    """KTO rows: which family carries the conversation, and which column the label."""
    label = "label" if "label" in first else "kto_tag"
    if first & {"conversations", "messages"}:
        return Layout("messages", "kto")  # resolved by the messages branch of layout_for
    if "instruction" in first:
        return Layout("alpaca", "kto", False, {"prompt": "instruction", "query": "input", "response": "output",
                                               "system": "system", "history": "history", "kto_tag": label})
    return Layout("kto", "kto", False, {"prompt": "prompt", "response": "completion", "kto_tag": label})


def _grpo_layout(first: set[str]) -> Layout:
    solution = next((c for c in SOLUTION_COLUMNS if c in first), None)
    return Layout("grpo", "prompt", False, {"prompt": "prompt", "solution": solution, "system": "system"})


def layout_for(fmt: str, rows: list[dict[str, Any]]) -> Layout:
    """The layout of ``fmt`` ("auto" or one of FORMATS) for data whose first rows are ``rows``.

    Raises ``DataError`` when the keys fit no format, fit several, or are KTO data.
    """
    check_format(fmt)
    if not rows:
        raise FormatError("no leading row is a JSON object, so the format cannot be told",
                          'write each row as {"field": value, …}')
    first = set(rows[0])
    family = None
    if fmt == "auto":
        families = {i: _family(set(r)) for i, r in enumerate(rows, start=1)}
        family = families[1]
        if family == "kto" and first & {"conversations", "messages"} and first & {"label", "kto_tag"}:
            families = {i: ("messages" if f == "kto" else f) for i, f in families.items()}
            family = "messages"  # messages + a true/false label: the kto kind (see the messages branch)
        if family is None or family.startswith("ambiguous"):
            why = f" ({family.split(':', 1)[1]})" if family else ""
            raise FormatError(f"row 1 has keys {sorted(first)}{why}; expected one of {_EXPECTED}",
                              "pass --format to say which format the file is in")
        for i, other in families.items():
            if other != family:
                raise FormatError(f"rows disagree about the format: row 1 looks like {_NAMES[family]}, row {i} "
                                  f"(keys {sorted(rows[i - 1])}) like {_NAMES.get(other, 'nothing known')}",
                                  "pass --format, or split the file by format")
    elif fmt in ("sharegpt", "openai"):
        family = "messages"
    else:
        family = fmt
    if family == "kto":
        if not first & {"label", "kto_tag"}:
            raise FormatError(f"row 1 has keys {sorted(first)}: KTO rows need a true/false 'label' (or 'kto_tag')",
                              "add the label column, or import the file with another --format")
        kto = _kto_layout(first)
        if kto.formatting != "messages":
            return kto
        family = "messages"
    if family == "grpo":
        if "prompt" not in first:
            raise FormatError(f"row 1 has keys {sorted(first)}: GRPO/PPO prompt rows need a 'prompt'",
                              "give each row a 'prompt' (a string or a list of messages), optionally a 'solution'")
        return _grpo_layout(first)
    ranking = {"chosen", "rejected"} <= first
    if family == "messages":
        column = "conversations" if "conversations" in first or (fmt == "sharegpt" and "messages" not in first) \
            else "messages"
        tags = _message_tags(rows, column)
        formatting = "sharegpt" if tags["role_tag"] == "from" else "openai"
        if fmt in ("sharegpt", "openai") and fmt != formatting and any(column in r for r in rows):
            formatting = fmt  # the user said so; the tags still follow the data
        cols = {"messages": column, "system": "system", "tools": "tools"}
        if ranking:
            cols.update(chosen="chosen", rejected="rejected")
        elif first & {"label", "kto_tag"}:
            cols.update(kto_tag="label" if "label" in first else "kto_tag")
            return Layout(formatting, "kto", False, cols, tags)
        return Layout(formatting, "preference" if ranking else "sft", ranking, cols, tags)
    if family == "alpaca":
        if first & {"label", "kto_tag"} and "output" in first:
            return _kto_layout(first)
        ranking = ranking and "output" not in first
        cols = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                "history": "history"}
        if ranking:
            cols.update(chosen="chosen", rejected="rejected")
        return Layout("alpaca", "preference" if ranking else "sft", ranking, cols)
    if family == "trl":
        if "completion" in first and "chosen" not in first:
            return Layout("trl", "sft", False, {"prompt": "prompt", "response": "completion"})
        return Layout("trl", "preference", True, {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"})
    return Layout("pt", "pt", False, {"prompt": "text"})


# --- conversion -------------------------------------------------------------------------------

_MISSING = object()


def _string(row: dict[str, Any], column: str | None, check: RowCheck, *, required: bool, fix: str) -> str | None:
    """Column ``column`` as a string; None (and a problem when required) if absent or null."""
    if column is None:
        return None
    value = row.get(column, _MISSING)
    if value is _MISSING or value is None:
        if required:
            check.add(column, "missing required field", "no such key" if value is _MISSING else "null", fix)
        return None
    if not isinstance(value, str):
        check.add(column, "must be a string", show(value), f"make {column!r} a string")
        return None
    return value


def to_canonical(raw: Any, layout: Layout, check: RowCheck) -> dict[str, Any] | None:
    """One source row → one canonical row, or None with the problems added to ``check``."""
    if not isinstance(raw, dict):
        check.add("", "a row must be a JSON object", show(raw), "write each row as {\"field\": value, …}")
        return None
    convert = {"alpaca": _alpaca, "sharegpt": _messages, "openai": _messages, "trl": _trl, "pt": _pt,
               "kto": _trl_kto, "grpo": _grpo}
    row = convert[layout.formatting](raw, layout, check)
    return row if check.ok else None


def _pt(raw: dict[str, Any], layout: Layout, check: RowCheck) -> dict[str, Any] | None:
    column = layout.col("prompt") or "text"
    text = _string(raw, column, check, required=True, fix=f"give each row a {column!r} string")
    if text is not None and not text.strip():
        check.add(column, "empty text", show(text), "drop the row or write the document")
    return {"text": text}


def _system(raw: dict[str, Any], layout: Layout, check: RowCheck) -> list[Sourced]:
    column = layout.col("system")
    if column is None or column not in raw:
        return []
    text = _string(raw, column, check, required=False, fix="")
    return [(column, {"role": "system", "content": text})] if text else []


def _tools(raw: dict[str, Any], layout: Layout, check: RowCheck) -> str | None:
    column = layout.col("tools")
    value = raw.get(column) if column else None
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, str):
        check.add(column, "must be a JSON string or list of tool schemas", show(value), "write the tools as JSON")
        return None
    try:
        json.loads(value)
    except json.JSONDecodeError as e:
        check.add(column, f"not valid JSON ({e.msg})", show(value), "write the tools as a JSON list of schemas")
    return value


def _alpaca(raw: dict[str, Any], layout: Layout, check: RowCheck) -> dict[str, Any] | None:
    messages = _system(raw, layout, check)
    history_col = layout.col("history")
    history = raw.get(history_col) if history_col else None
    if history is not None:
        pairs_ok = isinstance(history, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in history)
        if not pairs_ok:
            check.add(history_col, "must be a list of [instruction, answer] string pairs", show(history),
                      'write history as [["earlier question", "earlier answer"], …]')
        else:
            for i, (q, a) in enumerate(history):
                messages.append((f"{history_col}[{i}][0]", {"role": "user", "content": q}))
                messages.append((f"{history_col}[{i}][1]", {"role": "assistant", "content": a}))
    prompt_col, query_col = layout.col("prompt"), layout.col("query")
    instruction = _string(raw, prompt_col, check, required=True, fix=f"give each row an {prompt_col!r} string")
    query = _string(raw, query_col, check, required=False, fix="")
    parts = [p for p in (instruction, query) if p]
    messages.append((prompt_col or "", {"role": "user", "content": "\n".join(parts)}))
    if not check.ok:  # still report the other columns' problems: every problem of the row at once
        for key in ("chosen", "rejected") if layout.ranking else ("response",):
            _string(raw, layout.col(key), check, required=True, fix=f"give each row a {layout.col(key)!r} string")
        return None
    if layout.ranking:
        chosen = _string(raw, layout.col("chosen"), check, required=True, fix="give the preferred answer")
        rejected = _string(raw, layout.col("rejected"), check, required=True, fix="give the worse answer")
        if not check.ok:
            return None
        return _preference(messages, [(layout.col("chosen"), {"role": "assistant", "content": chosen})],
                           [(layout.col("rejected"), {"role": "assistant", "content": rejected})], None, check)
    response_col = layout.col("response")
    response = _string(raw, response_col, check, required=True,
                       fix=f"give each row an {response_col!r} string (the answer)")
    if response is None:
        return None
    messages.append((response_col, {"role": "assistant", "content": response}))
    check_conversation(check, messages, ends="assistant", what=prompt_col or "")
    if layout.kind == "kto":
        return _kto(raw, layout, messages, None, check)
    return {"messages": [m for _, m in messages]}


def _role_map(layout: Layout) -> dict[str, str]:
    mapping = {tag: _TAG_ROLE[key] for key, tag in layout.tags.items() if key in _TAG_ROLE and tag}
    if layout.tags.get("role_tag") == "role":
        for tag, role in _OPENAI_EXTRA_ROLES.items():
            mapping.setdefault(tag, role)
    return mapping


def _one_message(m: Any, path: str, layout: Layout, roles: dict[str, str], check: RowCheck) -> dict | None:
    role_tag, content_tag = layout.tags.get("role_tag") or "from", layout.tags.get("content_tag") or "value"
    if not isinstance(m, dict):
        check.add(path, "a message must be an object", show(m), f"write {{{role_tag!r}: …, {content_tag!r}: …}}")
        return None
    tag = m.get(role_tag, _MISSING)
    if tag is _MISSING:
        check.add(path, f"missing role field {role_tag!r}", f"keys {sorted(m)}",
                  f"give every message a {role_tag!r} (or set the tags for this file's layout)")
        return None
    if tag not in roles:
        check.add(f"{path}.{role_tag}", "unknown role", show(tag), f"use one of {', '.join(roles)}")
        return None
    role = roles[tag]
    content = m.get(content_tag, _MISSING)
    calls = m.get("tool_calls")
    if role == "assistant" and isinstance(calls, list) and calls:  # OpenAI tool calls
        return {"role": "tool_call", "content": _tool_calls(calls, f"{path}.tool_calls", check)}
    if isinstance(content, list):  # OpenAI content parts
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
            check.add(f"{path}.{content_tag}", "only text content parts are supported", show(content),
                      "drop image/audio parts or give the content as a string")
            return None
        content = "".join(texts)
    if content is _MISSING or content is None:
        check.add(path, f"missing content field {content_tag!r}", f"keys {sorted(m)}",
                  f"give every message a {content_tag!r} string")
        return None
    if not isinstance(content, str):
        check.add(f"{path}.{content_tag}", "content must be a string", show(content), "write the text as a string")
        return None
    return {"role": role, "content": content}


def _tool_calls(calls: list[Any], path: str, check: RowCheck) -> str:
    """OpenAI ``tool_calls`` → LLaMA-Factory's function-call JSON: {"name", "arguments"} or a list."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            check.add(f"{path}[{i}]", "a tool call needs function.name", show(call),
                      'write {"type": "function", "function": {"name": …, "arguments": …}}')
            continue
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass  # kept as the string it was
        out.append({"name": fn["name"], "arguments": args})
    return json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False)


def _message_list(value: Any, column: str, layout: Layout, check: RowCheck) -> list[Sourced] | None:
    if not isinstance(value, list):
        check.add(column, "must be a list of messages", show(value), "write the conversation as [{…}, {…}]")
        return None
    roles = _role_map(layout)
    out: list[Sourced] = []
    for i, m in enumerate(value):
        path = f"{column}[{i}]"
        msg = _one_message(m, path, layout, roles, check)
        if msg is None:
            continue
        if msg["role"] == "tool" and out and out[-1][1]["role"] == "tool":  # parallel results: one turn
            out[-1][1]["content"] += TOOL_RESULT_SEPARATOR + msg["content"]
            continue
        out.append((path, msg))
    return out


def _messages(raw: dict[str, Any], layout: Layout, check: RowCheck) -> dict[str, Any] | None:
    column = layout.col("messages") or "conversations"
    if column not in raw or raw[column] is None:
        check.add(column, "missing required field", "no such key" if column not in raw else "null",
                  f"give each row a {column!r} list of messages")
        return None
    messages = _message_list(raw[column], column, layout, check)
    tools = _tools(raw, layout, check)
    if messages is None or not check.ok:
        return None
    if not (messages and messages[0][1]["role"] == "system"):
        messages = _system(raw, layout, check) + messages
    if layout.ranking:
        sides = [_reply(raw, layout.col(k) or k, layout, check) for k in ("chosen", "rejected")]
        if not check.ok:
            return None
        return _preference(messages, sides[0], sides[1], tools, check)
    check_conversation(check, messages, ends="assistant", what=column)
    if layout.kind == "kto":
        return _kto(raw, layout, messages, tools, check)
    row: dict[str, Any] = {"messages": [m for _, m in messages]}
    if tools:
        row["tools"] = tools
    return row


def _kto(raw: dict[str, Any], layout: Layout, messages: list[Sourced], tools: str | None,
         check: RowCheck) -> dict[str, Any] | None:
    """A KTO row: the conversation's last assistant turn is the completion, the tag its label."""
    column = layout.col("kto_tag") or "label"
    label = raw.get(column, _MISSING)
    if isinstance(label, str) and label.strip().lower() in ("true", "false"):  # CSV has no booleans
        label = label.strip().lower() == "true"
    if not isinstance(label, bool):
        check.add(column, "the KTO label must be true or false", "no such key" if label is _MISSING else show(label),
                  f"give each row {column!r}: true (a good reply) or false (a bad one)")
    if not check.ok:
        return None
    row: dict[str, Any] = {"prompt": [m for _, m in messages[:-1]], "completion": [messages[-1][1]], "label": label}
    if tools:
        row["tools"] = tools
    return row


def _reply(raw: dict[str, Any], column: str, layout: Layout, check: RowCheck) -> list[Sourced]:
    """A chosen/rejected value: a message dict (LLaMA-Factory), a message list, or a string."""
    value = raw.get(column, _MISSING)
    if value is _MISSING or value is None:
        check.add(column, "missing required field", "no such key" if value is _MISSING else "null",
                  f"give each row a {column!r} reply")
        return []
    if isinstance(value, str):
        return [(column, {"role": "assistant", "content": value})]
    if isinstance(value, dict):
        msg = _one_message(value, column, layout, _role_map(layout), check)
        return [(column, msg)] if msg else []
    return _message_list(value, column, layout, check) or []


def _preference(prompt: list[Sourced], chosen: list[Sourced], rejected: list[Sourced], tools: str | None,
                check: RowCheck) -> dict[str, Any] | None:
    check_conversation(check, prompt, ends="prompt", what=prompt[0][0] if prompt else "prompt")
    check_reply(check, chosen, what=chosen[0][0] if chosen else "chosen")
    check_reply(check, rejected, what=rejected[0][0] if rejected else "rejected")
    if check.ok and chosen[0][1]["content"] == rejected[0][1]["content"]:
        check.add(rejected[0][0], "chosen and rejected are identical, so the pair teaches nothing",
                  show(chosen[0][1]["content"]), "drop the row or give a different rejected reply")
    if not check.ok:
        return None
    row: dict[str, Any] = {"prompt": [m for _, m in prompt], "chosen": [chosen[0][1]],
                           "rejected": [rejected[0][1]]}
    if tools:
        row["tools"] = tools
    return row


_TRL_LAYOUT = Layout("openai", "sft", tags=dict(OPENAI_TAGS))


def _trl_side(raw: dict[str, Any], column: str, role: str, check: RowCheck) -> list[Sourced] | None:
    value = raw.get(column, _MISSING)
    if value is _MISSING or value is None:
        check.add(column, "missing required field", "no such key" if value is _MISSING else "null",
                  f"give each row a {column!r} (a string or a list of messages)")
        return None
    if isinstance(value, str):
        return [(column, {"role": role, "content": value})]
    return _message_list(value, column, _TRL_LAYOUT, check)


def _trl(raw: dict[str, Any], layout: Layout, check: RowCheck) -> dict[str, Any] | None:
    if layout.kind == "sft":  # prompt + completion
        prompt = _trl_side(raw, layout.col("prompt"), "user", check)
        completion = _trl_side(raw, layout.col("response"), "assistant", check)
        if prompt is None or completion is None or not check.ok:
            return None
        messages = prompt + completion
        check_conversation(check, messages, ends="assistant", what=layout.col("prompt"))
        return {"messages": [m for _, m in messages]}
    if layout.col("prompt") in raw:
        prompt = _trl_side(raw, "prompt", "user", check)
        chosen = _trl_side(raw, "chosen", "assistant", check)
        rejected = _trl_side(raw, "rejected", "assistant", check)
    else:  # implicit prompt: both sides are whole conversations sharing the prompt
        chosen = _trl_side(raw, "chosen", "assistant", check)
        rejected = _trl_side(raw, "rejected", "assistant", check)
        if chosen is None or rejected is None or not check.ok:
            return None
        if isinstance(raw["chosen"], str):
            check.add("prompt", "missing required field", "plain-string chosen/rejected without a prompt",
                      "add a 'prompt' column, or give chosen/rejected as full conversations")
            return None
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n][1] == rejected[n][1]:
            n += 1
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    if prompt is None or chosen is None or rejected is None or not check.ok:
        return None
    return _preference(prompt, chosen, rejected, None, check)


def _trl_kto(raw: dict[str, Any], layout: Layout, check: RowCheck) -> dict[str, Any] | None:
    """TRL's unpaired preference layout: prompt, completion (strings or message lists), label."""
    prompt = _trl_side(raw, layout.col("prompt") or "prompt", "user", check)
    completion = _trl_side(raw, layout.col("response") or "completion", "assistant", check)
    if prompt is None or completion is None or not check.ok:
        return None
    check_conversation(check, prompt, ends="prompt", what=layout.col("prompt") or "prompt")
    check_reply(check, completion, what=layout.col("response") or "completion")
    return _kto(raw, layout, prompt + completion, None, check)


def _grpo(raw: dict[str, Any], layout: Layout, check: RowCheck) -> dict[str, Any] | None:
    """A GRPO/PPO prompt: the conversation up to the user's turn, and optionally the reference answer."""
    prompt = _trl_side(raw, "prompt", "user", check)
    if prompt is None or not check.ok:
        return None
    if not (prompt and prompt[0][1]["role"] == "system"):
        prompt = _system(raw, layout, check) + prompt
    check_conversation(check, prompt, ends="prompt", what="prompt")
    row: dict[str, Any] = {"prompt": [m for _, m in prompt]}
    column = layout.col("solution")
    if column:
        value = raw.get(column)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # numeric answers (GSM8K-style) are compared as text by reward functions
        if value is not None and not isinstance(value, str):
            check.add(column, "must be a string", show(value), f"write {column!r} as the reference answer text")
        elif value is not None and value.strip():
            row["solution"] = value
    return row if check.ok else None
