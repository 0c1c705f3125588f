"""D1: documents → cleaned, token-aware, overlapping pt chunks."""

from __future__ import annotations

import json

from data_helpers import files_under
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.data.corpus import CorpusConfig, build_corpus, chunk_text, token_spans
from llmloop.data.versions import read_rows, resolve

runner = CliRunner()


def _pdf(path, lines: list[str]) -> None:
    """A one-page PDF with text lines in Helvetica (written by hand: PDF syntax is plain text)."""
    content = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({t}) Tj 0 -16 Td" for t in lines) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
            "/Contents 4 0 R >>", f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)


def _docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    footer = "Copyright 2026 ACME Corp. All rights reserved."
    (d / "a.txt").write_text("Returns policy.\n\n\n\nYou may return   items within 30 days.\n3\n" + footer, encoding="utf-8")
    (d / "b.md").write_text("# Shipping\n\nWe ship **worldwide** via [DHL](http://dhl.com).\n\n" + footer, encoding="utf-8")
    (d / "c.html").write_text("<html><head><style>p{color:red}</style><script>var x=1;</script></head><body>"
                              "<nav>Home | About</nav><h1>Warranty</h1><p>Two years on all devices.</p>"
                              f"<footer>{footer}</footer><p>{footer}</p></body></html>", encoding="utf-8")
    (d / "d.jsonl").write_text(json.dumps({"body": "保修两年。所有设备均适用。"}) + "\n", encoding="utf-8")
    _pdf(d / "e.pdf", ["Battery care guide.", "Charge to 80 percent."])
    return d


def test_every_document_type_is_cleaned(db, tmp_path):
    d = _docs(tmp_path)
    r = build_corpus(db, CorpusConfig(docs=[d], name="kb", chunk_tokens=64, overlap=8, text_field="body"))
    rows = read_rows(r.version)
    by_source = {x["meta"]["source"]: x["text"] for x in rows}
    assert r.version.kind == "pt" and r.documents == 5 and r.unit == "words"
    assert by_source["a.txt"] == "Returns policy.\n\nYou may return items within 30 days."  # spaces, blanks, page no.
    assert by_source["b.md"] == "Shipping\n\nWe ship worldwide via DHL."  # markdown syntax gone
    assert by_source["c.html"] == "Warranty\n\nTwo years on all devices."  # script/style/nav/footer gone
    assert by_source["d.jsonl#1"] == "保修两年。所有设备均适用。"
    assert "Battery care guide." in by_source["e.pdf"] and "Charge to 80 percent." in by_source["e.pdf"]
    assert r.boilerplate_lines == 1 and not any("Copyright" in x["text"] for x in rows)


def test_token_chunks_with_the_model_tokenizer_overlap(db, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    words = [f"Sentence {i} says the order number is {1000 + i}." for i in range(120)]
    (tmp_path / "long.txt").write_text(" ".join(words), encoding="utf-8")
    r = runner.invoke(app, ["data", "corpus", str(tmp_path / "long.txt"), "--name", "cpt", "--chunk-tokens", "128",
                            "--overlap", "32", "--tokenizer", str(tiny_model_dir)])
    assert r.exit_code == 0, r.output
    v = resolve(db, "cpt")
    texts = [x["text"] for x in read_rows(v)]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert len(texts) > 3 and max(lengths) <= 128 + 2  # re-tokenising a cut piece may differ by a token
    assert all(t.endswith(".") for t in texts)  # ends pulled back to a sentence break
    full = " ".join(words)
    for a, b in zip(texts, texts[1:]):
        assert a[-20:] in b or b[:20] in a, "consecutive chunks must overlap"
        assert full.index(b) < full.index(a) + len(a)
    assert texts[0].startswith("Sentence 0 ") and texts[-1].endswith("is 1119.")  # nothing lost at either end
    assert f"tokens ({tiny_model_dir})" in r.output.replace("\n", "")


def test_chunker_invariants_on_words():
    text = " ".join(f"w{i}" for i in range(1000))
    spans, _ = token_spans(None)
    chunks = chunk_text(text, spans(text), 100, 10)
    assert all(len(c.split()) <= 100 for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(c.split())
    assert covered == set(text.split())  # every word is in some chunk


def test_bad_corpus_input_is_refused_with_nothing_written(db, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe broken")
    r = runner.invoke(app, ["data", "corpus", str(tmp_path / "bad.txt"), "--name", "x"])
    assert r.exit_code == 2 and "bad.txt: not valid UTF-8 at byte offset 3 (line 2)" in r.output
    (tmp_path / "d.jsonl").write_text('{"text": "fine"}\n{"text": broken}\n', encoding="utf-8")
    r = runner.invoke(app, ["data", "corpus", str(tmp_path / "d.jsonl"), "--name", "x"])
    assert r.exit_code == 2 and "d.jsonl, line 2: malformed JSON" in r.output
    r = runner.invoke(app, ["data", "corpus", str(tmp_path / "bad.txt"), "--name", "x", "--overlap", "600"])
    assert r.exit_code == 2 and "--overlap (600) must be smaller than --chunk-tokens (512)" in r.output
    (tmp_path / "x.docx").write_bytes(b"PK")
    r = runner.invoke(app, ["data", "corpus", str(tmp_path / "x.docx"), "--name", "x"])
    assert r.exit_code == 2 and "unsupported document type '.docx'" in r.output
    (tmp_path / "empty.txt").write_text("  \n\n", encoding="utf-8")
    r = runner.invoke(app, ["data", "corpus", str(tmp_path / "empty.txt"), "--name", "x"])
    assert r.exit_code == 2 and "no text left" in r.output
    r = runner.invoke(app, ["data", "corpus", str(tmp_path / "empty.txt"), "--name", "../x"])
    assert r.exit_code == 2 and "not allowed" in r.output
    assert not files_under(db.workspace.datasets_dir)
    r = runner.invoke(app, ["data", "list"])
    assert "no datasets yet" in r.output
