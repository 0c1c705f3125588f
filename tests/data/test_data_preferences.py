"""D4–D6: preference builders over feedback stored through the gateway's write path (``store.ingest``)."""

from __future__ import annotations

import feedback_seed as seed
import pytest
from judge_server import serving
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.data.preferences import BuildPreferencesConfig, build_preferences
from llmloop.data.rows import DataError
from llmloop.data.versions import read_rows
from llmloop.store import feedback_queries
from llmloop.store.ingest import EventOp, ingest_now

runner = CliRunner()
Q = [{"role": "user", "content": "Where is my order?"}]


def _answer(db, rid: str, output: str, version: str = "v1.0", user: str = "u1") -> str:
    seed.completion(db, request_id=rid, user_id=user, version=version, messages=Q, output=output)
    return rid


def _battle(db, bid: str, a: str, b: str) -> str:
    seed.battle(db, battle_id=bid, user_id="u1", messages=Q,
                answers=[(f"{bid}-a", "v1.0", a), (f"{bid}-b", "v1.1", b)])
    return bid


def test_thumbs_become_kto_rows_with_provenance(db):
    _answer(db, "r1", "It ships tomorrow.")
    _answer(db, "r2", "No idea.", version="v1.1")
    t1 = seed.thumb(db, request_id="r1", user_id="alice", rating=1, comment="clear")
    seed.thumb(db, request_id="r2", user_id="bob", rating=-1)
    seed.thumb(db, request_id="r2", user_id="bob", rating=1)  # bob changed his mind: last counts
    seed.thumb(db, request_id="r2", user_id="carol", rating=-1)
    r = build_preferences(db, BuildPreferencesConfig(source="thumbs", name="kto-fb"))
    rows = read_rows(r.version)
    assert r.kind == "kto" and r.version.kind == "kto" and r.considered == 4 and r.last_id == 4
    assert [(x["completion"][0]["content"], x["label"], x["provenance"]["user_id"]) for x in rows] == [
        ("It ships tomorrow.", True, "alice"), ("No idea.", True, "bob"), ("No idea.", False, "carol")]
    p = rows[0]["provenance"]
    assert (p["source"], p["thumb_id"], p["request_id"], p["version"], p["comment"]) == ("thumb", t1, "r1", "v1.0", "clear")
    assert rows[0]["prompt"] == Q and rows[1]["provenance"]["version"] == "v1.1"
    # watermark: nothing new after the last id → nothing stored
    again = build_preferences(db, BuildPreferencesConfig(source="thumbs", name="kto-fb", after_id=r.last_id))
    assert again.version is None and again.considered == 0


def test_corrections_and_edits_become_pairs(db):
    _answer(db, "r1", "No idea.")
    _answer(db, "r2", "Maybe.")
    _answer(db, "r3", "Fine answer.")
    tid = seed.thumb(db, request_id="r1", user_id="alice", rating=-1, comment="useless",
                     correction="Orders ship within 2 days; track them under My orders.")
    seed.thumb(db, request_id="r2", user_id="bob", rating=-1)  # no correction: not a pair
    seed.thumb(db, request_id="r3", user_id="bob", rating=1, correction="ignored: thumbs up")
    seed.thumb(db, request_id="r2", user_id="eve", rating=-1, correction="Maybe.")  # same as answer
    ingest_now(db, [[EventOp(kind="edit", request_id="r2", user_id="carol", payload={"text": "It ships today."})]])
    r = build_preferences(db, BuildPreferencesConfig(source="corrections", name="fixes", note="week 1"))
    rows = read_rows(r.version)
    assert r.version.kind == "preference" and r.version.note == "week 1" and r.rows == 2
    first, second = rows
    assert first["chosen"][0]["content"].startswith("Orders ship") and first["rejected"][0]["content"] == "No idea."
    assert first["provenance"]["thumb_id"] == tid and first["provenance"]["comment"] == "useless"
    assert second["provenance"]["source"] == "edit" and second["chosen"][0]["content"] == "It ships today."
    assert second["rejected"][0]["content"] == "Maybe." and second["provenance"]["user_id"] == "carol"


def test_votes_through_the_builder(db):
    _battle(db, "b1", "Short.", "A longer and better answer.")
    _battle(db, "b2", "Same", "Same")
    seed.vote(db, battle_id="b1", user_id="u2", choice="b")
    seed.vote(db, battle_id="b2", user_id="u2", choice="a")  # identical answers: dropped
    r = build_preferences(db, BuildPreferencesConfig(source="votes", name="arena"))
    (row,) = read_rows(r.version)
    assert row["chosen"][0]["content"] == "A longer and better answer." and row["provenance"]["versions"] == ["v1.0", "v1.1"]
    assert r.last_id == 2


def test_ai_judge_labels_unvoted_pairs_both_orders(db):
    _battle(db, "b1", "Short.", "A longer, more useful answer.")
    _battle(db, "b2", "The much longer answer of the two.", "Tiny.")
    _battle(db, "b3", "Same length A", "Same length B")  # tie: dropped
    _battle(db, "voted", "x", "yy")
    seed.vote(db, battle_id="voted", user_id="u9", choice="a")  # voted: not the judge's job
    assert [b.battle_id for b in feedback_queries.unvoted_battles(db)] == ["b1", "b2", "b3"]
    with serving("longer") as url:
        r = runner.invoke(app, ["data", "build-preferences", "--from", "judge", "--name", "judged",
                                "--judge", f"openai:judge@{url}"])
    assert r.exit_code == 0, r.output
    assert "dropped 1 pair(s): tie" in r.output and "2 preference rows from 3 judge" in r.output
    from llmloop.data.versions import resolve

    rows = read_rows(resolve(db, "judged"))
    assert [x["chosen"][0]["content"] for x in rows] == ["A longer, more useful answer.",
                                                          "The much longer answer of the two."]
    p = rows[0]["provenance"]
    assert p["source"] == "ai_judge" and p["judge"].startswith("llm:judge@") and p["battle_id"] == "b1"
    assert p["request_ids"] == ["b1-a", "b1-b"] and p["reason"] == "rule longer"


def test_position_biased_judge_is_dropped_not_trusted(db):
    _battle(db, "b1", "Short.", "A longer, more useful answer.")
    with serving("first") as url:
        r = runner.invoke(app, ["data", "build-preferences", "--from", "judge", "--name", "judged",
                                "--judge", f"openai:judge@{url}"])
    assert r.exit_code == 0, r.output
    assert "dropped 1 pair(s): orders disagree" in r.output and "nothing stored" in r.output
    assert not list(db.workspace.datasets_dir.rglob("*.jsonl"))


def test_bad_requests_are_clear(db):
    r = runner.invoke(app, ["data", "build-preferences", "--from", "likes", "--name", "x"])
    assert r.exit_code == 2 and "--from" in r.output
    r = runner.invoke(app, ["data", "build-preferences", "--from", "judge", "--name", "x"])
    assert r.exit_code == 2 and "--judge openai:MODEL@BASE_URL" in r.output
    r = runner.invoke(app, ["data", "build-preferences", "--from", "votes", "--name", "../etc"])
    assert r.exit_code == 2 and "not allowed" in r.output
    _answer(db, "r1", "x")
    seed.thumb(db, request_id="r1", user_id="a", rating=1)
    build_preferences(db, BuildPreferencesConfig(source="thumbs", name="mixed"))
    _battle(db, "b1", "one", "two")
    seed.vote(db, battle_id="b1", user_id="u", choice="a")
    with pytest.raises(DataError, match="holds kto rows"):
        build_preferences(db, BuildPreferencesConfig(source="votes", name="mixed"))
