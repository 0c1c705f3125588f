import re

from llmloop.ui.i18n import LANGUAGES, STRINGS, t


def test_every_string_has_every_language_and_the_same_placeholders():
    for key, entry in STRINGS.items():
        assert set(entry) == set(LANGUAGES), key
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in entry.items()}
        assert len({frozenset(f) for f in fields.values()}) == 1, (key, fields)
        assert entry["zh"] != entry["en"] or key == "title", key


def test_t_formats_and_falls_back():
    assert t("reveal", "zh", a="v1.0", b="v1.1") == "A 是 v1.0，B 是 v1.1。"
    assert t("send", "fr") == "Send"


def test_command_line_hints_become_this_pages_controls():
    from llmloop.ui.error_text import error_text, for_page

    msg = ("tickets.jsonl, row 2: instruction is empty. To import the 1 valid row(s) and leave out the rest, "
           "pass --skip-invalid.")
    assert "--skip-invalid" not in for_page(msg, "en") and "Import only the valid rows" in for_page(msg, "en")
    assert "只导入有效的行" in for_page(msg, "zh")
    bad = "max_steps (from --set): must be a number (got 'x'); fix max_steps in the file or pass --set max_steps=…"
    assert "--set" not in for_page(bad, "en") and "Overrides" in for_page(bad, "en")
    missing = "dataset: required but missing; add `dataset: …` to the file or pass --set dataset=…"
    assert "--set" not in for_page(missing, "en") and "dataset" in for_page(missing, "en")
    alias = "no round is in progress; use `llmloop models alias production VERSION` to move production by hand"
    assert "llmloop models alias" not in for_page(alias, "en") and "Move alias" in for_page(alias, "en")
    from llmloop.ui.client import GatewayError

    e = GatewayError("bad rows", code="invalid_rows")
    assert error_text(e, "zh").startswith("错误：部分行无效")


def test_a_pair_from_one_version_is_labelled_on_policy():
    from llmloop.ui.tab_chat import reveal

    assert "on-policy" in reveal({"a": "v1.0", "b": "v1.0"}, "en") and "同策略" in reveal({"a": "v1", "b": "v1"}, "zh")
    assert reveal({"a": "v1.0", "b": "v1.1"}, "en") == "A was v1.0, B was v1.1."
