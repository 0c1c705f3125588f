"""Problems with data, and the rules a canonical conversation obeys.

A ``Problem`` names the file, the 1-based row (and physical line where the file has lines), the
*source* field the user has to edit, what was seen and the fix. Converters (``formats``) check
source fields themselves and hand each canonical message over together with the source path it
came from, so the conversation rules below can report ``conversations[3].from`` rather than a
position in a structure the user never wrote.

Canonical roles: ``system`` (first message only), ``user``, ``assistant``, and for tool-use data
``tool_call`` (the assistant calling tools; content is the call as JSON: ``{"name", "arguments"}``
or a list of them) and ``tool`` (what the tool returned). After an optional system message a
conversation alternates a *prompt side* turn (``user`` or ``tool``) and a *response side* turn
(``assistant`` or ``tool_call``), exactly as LLaMA-Factory's sharegpt reader requires, so every
valid row exports to it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmloop.errors import UserError

ROLES = ("system", "user", "assistant", "tool_call", "tool")
PROMPT_SIDE = ("user", "tool")
RESPONSE_SIDE = ("assistant", "tool_call")
MAX_LISTED = 20


class DataError(UserError, ValueError):
    """A user error about data: a bad name, a missing file, an unsupported format."""


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None  # 1-based record number; None when the whole file is at fault
    field: str  # the source field, e.g. "conversations[2].from"; "" for the row or file
    problem: str  # what is wrong
    seen: str  # the value seen, already shortened for display; "" when nothing useful
    fix: str  # what to do about it
    line: int | None = None  # physical line, where the file has lines

    @property
    def where(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.line is not None and self.line != self.row:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    def __str__(self) -> str:
        text = f"{self.where}: " + (f"{self.field}: " if self.field else "") + self.problem
        if self.seen:
            text += f" (saw {self.seen})"
        return f"{text}. Fix: {self.fix}"


class DataValidationError(DataError):
    """Rows failed validation; nothing was written. ``problems`` holds every problem found."""

    http_status = 422
    code = "invalid_rows"

    def __init__(self, problems: list[Problem], *, total_rows: int | None = None, hint: str = "") -> None:
        self.problems = list(problems)
        self.total_rows = total_rows
        bad_rows = len({(p.file, p.row) for p in self.problems if p.row is not None})
        unreadable = sorted({p.file for p in self.problems if p.row is None})
        if unreadable:
            head = f"{', '.join(unreadable)}: cannot be imported as it is"
        else:
            head = f"{len(self.problems)} problem(s) in {bad_rows} row(s)"
            if total_rows is not None:
                head += f" of {total_rows}"
        lines = [head + "; nothing was written:"]
        lines += [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  … and {len(self.problems) - MAX_LISTED} more")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


def show(value: Any, limit: int = 60) -> str:
    """A value as a problem's ``seen``: its type for non-strings, shortened."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text if isinstance(value, str) else f"{type(value).__name__} {text}"


class RowCheck:
    """Collects the problems of one row."""

    def __init__(self, file: str, row: int | None, line: int | None = None) -> None:
        self.file, self.row, self.line = file, row, line
        self.problems: list[Problem] = []

    def add(self, field: str, problem: str, seen: str, fix: str) -> None:
        self.problems.append(Problem(self.file, self.row, field, problem, seen, fix, self.line))

    @property
    def ok(self) -> bool:
        return not self.problems


# A message on its way to canonical form, with the source path it came from.
Sourced = tuple[str, dict[str, Any]]

_ORDER_FIX = (
    "after an optional leading system message, turns alternate user → assistant "
    "(tool data: user → tool_call → tool → assistant); merge or remove the out-of-place turn"
)


def check_conversation(check: RowCheck, messages: list[Sourced], *, ends: str, what: str) -> None:
    """Check roles, contents and turn order of canonical ``messages``.

    ``ends`` is "assistant" (a complete SFT conversation) or "prompt" (a preference prompt, which
    ends with the user's turn); ``what`` names the source field holding the list.
    """
    if not messages:
        check.add(what, "no messages", "[]", "give at least one user turn" +
                  (" and the assistant's answer" if ends == "assistant" else ""))
        return
    order_reported = False
    expect = "prompt"
    previous: str | None = None
    for i, (path, msg) in enumerate(messages):
        role, content = msg["role"], msg["content"]
        if role not in ROLES:
            check.add(path, "unknown role", show(role), f"use one of {', '.join(ROLES)}")
            order_reported = True
            continue
        if not content.strip():
            check.add(path, f"empty {role} content", show(content), "write the text or drop the row")
        if role == "system":
            if i != 0 and not order_reported:
                check.add(path, "a system message may only come first", f"system at position {i + 1}",
                          "move it to the start or merge it into the first system message")
                order_reported = True
            continue
        side = "prompt" if role in PROMPT_SIDE else "response"
        if not order_reported:
            bad = None
            if side != expect:
                want = "a user (or tool)" if expect == "prompt" else "an assistant (or tool_call)"
                after = f"after {previous}" if previous else "first (after the optional system message)"
                bad = f"expected {want} turn {after}"
            elif role == "tool" and previous != "tool_call":
                bad = "a tool result must follow a tool_call"
            elif role == "user" and previous == "tool_call":
                bad = "a tool_call must be followed by its tool result"
            if bad:
                check.add(path, f"role order: {bad}", show(role), _ORDER_FIX)
                order_reported = True
        expect = "response" if side == "prompt" else "prompt"
        previous = role
    roles = [m["role"] for _, m in messages]
    if "user" not in roles:
        check.add(what, "no user turn", f"roles {roles}", "add the user's message")
    elif not order_reported:
        last_path, last = messages[-1][0], roles[-1]
        if ends == "assistant" and last != "assistant":
            check.add(last_path, "the conversation must end with an assistant reply", show(last),
                      "add the assistant's answer or drop the trailing turn")
        if ends == "prompt" and last not in PROMPT_SIDE:
            check.add(last_path, "a preference prompt must end with the user's turn", show(last),
                      "move the final assistant reply into chosen/rejected or drop it")


def check_reply(check: RowCheck, messages: list[Sourced], *, what: str) -> None:
    """A preference's chosen or rejected side: exactly one assistant (or tool_call) message."""
    if len(messages) != 1:
        check.add(what, f"must hold exactly one assistant reply, not {len(messages)} messages",
                  f"roles {[m['role'] for _, m in messages]}",
                  "keep only the final reply; earlier turns belong in the prompt")
        return
    path, msg = messages[0]
    if msg["role"] not in RESPONSE_SIDE:
        check.add(path, "the reply must come from the assistant", show(msg["role"]),
                  "use the assistant role for chosen and rejected")
    if not msg["content"].strip():
        check.add(path, "empty reply", show(msg["content"]), "write the reply or drop the row")
