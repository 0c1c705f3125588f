import re

from llmloop.ui.i18n import LANGUAGES, STRINGS, t


def test_every_string_has_every_language_and_the_same_placeholders():
    for key, entry in STRINGS.items():
        assert set(entry) == set(LANGUAGES), key
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in entry.items()}
        assert len({frozenset(f) for f in fields.values()}) == 1, (key, fields)
        assert entry["zh"] != entry["en"] or key == "title", key


def test_t_formats_and_falls_back():
    assert t("vote_saved", "zh", id=3, a="v1.0", b="v1.1") == "投票已保存（3）。A 是 v1.0，B 是 v1.1。"
    assert t("send", "fr") == "Send"
