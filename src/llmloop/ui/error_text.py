"""The gateway's errors in the page's words and language.

The library's messages are written for the command line ("pass --skip-invalid", "--set max_steps=…",
"use `llmloop models alias …`"); a person in the browser has a checkbox, an Overrides box and a
"Move alias" button instead. ``error_text`` rewrites those hints into the controls of this page and,
for the error codes a person meets, gives the message in the page's language (the gateway's own text
follows in English, so nothing it said is lost).
"""

from __future__ import annotations

import re

from llmloop.ui.client import GatewayError
from llmloop.ui.i18n import t

# (pattern, i18n key of the replacement; the match's groups are its placeholders)
_CLI_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r",? ?pass --skip-invalid\.?"), "hint_skip_invalid"),
    (re.compile(r"\(from --set\)"), "hint_from_set"),
    (re.compile(r"add `([\w.]+): …` to the file or pass --set [\w.]+=…"), "hint_add"),
    (re.compile(r"(?:fix (\S+) in the file or )?pass --set ([\w.]+)=…"), "hint_set"),
    (re.compile(r"e\.g\. --set ([\w.]+=\S+)"), "hint_set_example"),
    (re.compile(r"--set '([^']+)'"), "hint_override_line"),
    (re.compile(r"use `?llmloop models alias production VERSION`? to move production by hand"), "hint_alias_production"),
    (re.compile(r"\(?`?llmloop models alias NAME VERSION`?\)?"), "hint_alias"),
    (re.compile(r"pass --format auto or one of"), "hint_format_one_of"),
    (re.compile(r"pass --format(?: to say which format the file is in)?"), "hint_format"),
    (re.compile(r"pass --tokenizer PATH \(the model's folder\)"), "hint_tokenizer"),
    (re.compile(r"pass --no-register and register by hand"), "hint_no_register"),
    (re.compile(r"pass --fresh to discard them, or choose another --out-dir"), "hint_fresh"),
    (re.compile(r"start the UI with --api-key"), "hint_api_key"),
]

# gateway error code → i18n key of the page's sentence (placeholders: {msg} = the gateway's text)
_CODES = {
    "insufficient_role": "err_insufficient_role",
    "user_mismatch": "err_user_mismatch",
    "missing_api_key": "err_missing_key",
    "invalid_api_key": "err_invalid_key",
    "auth_disabled": "err_auth_disabled",
    "rate_limit_exceeded": "err_rate_limit",
    "invalid_rows": "err_invalid_rows",
    "invalid_config": "err_invalid_config",
    "not_found": "err_not_found",
    "battle_not_found": "err_battle_not_found",
    "request_not_found": "err_request_not_found",
    "duplicate_vote": "err_duplicate_vote",
    "not_yours": "err_not_yours",
    "no_production": "err_no_production",
    "model_not_found": "err_model_not_found",
    "unreachable": "err_unreachable",
    "missing_dependency": "err_missing_dependency",
    "no_battles": "err_no_battles",
    "unknown_name": "err_unknown_name",
    "invalid_split": "err_invalid_split",
}


def for_page(message: str, lang: str) -> str:
    """``message`` with every command-line hint replaced by the control that does it here."""
    for pattern, key in _CLI_HINTS:
        message = pattern.sub(lambda m, k=key: t(k, lang, **{f"g{i}": g or "" for i, g in enumerate(m.groups(), 1)}),
                              message)
    return message


def error_text(e: GatewayError | str, lang: str) -> str:
    """What the page says about a refused call: the page's sentence for the code, then the gateway's
    own (hints rewritten for the page)."""
    message = for_page(str(e), lang)
    code = getattr(e, "code", None)
    key = _CODES.get(code or "")
    if key:
        return t("error", lang, msg=f"{t(key, lang)} ({message})")
    return t("error", lang, msg=message)
