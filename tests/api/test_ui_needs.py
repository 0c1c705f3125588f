"""What the web UI needs from the gateway, for every role (issue 15): a user key's whoami, the
traffic split edited with a reason that lands in its history, paged rows, the leaderboard's
"no battles yet" told apart from a failure, and arena battles between two different versions."""

from __future__ import annotations

import tomllib
from pathlib import Path

from api_helpers import error

from llmloop.store import registry, traffic

ROOT = Path(__file__).resolve().parents[2]


def test_whoami_answers_a_user_key_with_its_own_user(api) -> None:
    me = api.user.get("/api/v1/whoami")
    assert me.status_code == 200, me.text  # was 403: the UI then said no key was given
    body = me.json()
    assert body["role"] == "user" and body["admin"] is False and body["authenticated"] is True
    assert body["user"]  # the identity the key's chat and votes carry
    assert error(api.anonymous.get("/api/v1/whoami"), 401)["code"] == "missing_api_key"  # auth is on


def test_split_change_needs_admin_and_a_reason_and_lands_in_its_history(api) -> None:
    body = {"weights": {"production": 80, "candidate": 20}, "reason": "canary for v1.1"}
    error(api.annotator.put("/api/v1/loop/split", json=body), 403)
    error(api.admin.put("/api/v1/loop/split", json={"weights": body["weights"]}), 422)  # no reason: refused
    assert error(api.admin.put("/api/v1/loop/split", json={"weights": {"nope": 1}, "reason": "x"}),
                 422)["code"] == "unknown_name"
    r = api.admin.put("/api/v1/loop/split", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["shares"] == {"production": 0.8, "candidate": 0.2}
    (last, *_) = traffic.split_history(api.db, limit=1)
    assert last.reason == "canary for v1.1" and last.actor == "key:test-admin"
    assert api.annotator.get("/api/v1/loop/split").json()["reason"] == "canary for v1.1"


def test_rows_page_through_a_dataset(api) -> None:
    import json

    data = "".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(25)).encode()
    assert api.annotator.post("/api/v1/data/upload", files={"file": ("p.jsonl", data)},
                              data={"name": "paged"}).status_code == 201
    first = api.annotator.get("/api/v1/data/paged/rows", params={"n": 10}).json()
    third = api.annotator.get("/api/v1/data/paged/rows", params={"n": 10, "offset": 20}).json()
    assert len(first) == 10 and len(third) == 5
    assert "q20" in json.dumps(third[0]) and "q0" in json.dumps(first[0])


def test_leaderboard_without_battles_says_so_with_its_own_code(api) -> None:
    e = error(api.annotator.get("/api/v1/eval/leaderboard", params={"bootstrap": 5}), 400)
    assert e["code"] == "no_battles"  # the UI shows "no leaderboard yet", not an empty table


def test_a_missing_optional_package_is_a_501_naming_the_install(api, monkeypatch) -> None:
    import llmloop.eval.leaderboard as lb

    def no_scipy(*a, **k):  # noqa: ANN002, ANN003, ANN202 - what a gateway without scipy raises
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr(lb, "leaderboard_from_store", no_scipy)
    e = error(api.annotator.get("/api/v1/eval/leaderboard"), 501)  # was a bare 500
    assert e["code"] == "missing_dependency" and 'llmloop[eval]' in e["message"]


def test_ui_extra_brings_what_evaluate_needs() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    name = lambda req: req.split(">")[0].split("=")[0].split("[")[0].strip()  # noqa: E731
    assert {name(r) for r in extras["eval"]} <= {name(r) for r in extras["ui"]}
    assert {"gradio", "openai", "scipy", "sacrebleu"} <= {name(r) for r in extras["ui"]}


def test_arena_pits_the_splits_two_versions_and_labels_one_version_pairs(api) -> None:
    ask = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}
    registry.remove_alias(api.db, "candidate", reason="test: no candidate")
    same = api.user.post("/v1/arena", json=ask).json()
    v = api.user.post("/v1/feedback/vote", json={"battle_id": same["battle_id"], "choice": "tie"}).json()
    assert v["versions"] == {"a": "v1.0", "b": "v1.0"}  # only production: an on-policy pair (the UI says so)
    r = api.admin.put("/api/v1/loop/split", json={"weights": {"production": 50, "v1.1": 50}, "reason": "ab"})
    assert r.status_code == 200, r.text
    for _ in range(2):
        b = api.user.post("/v1/arena", json=ask)
        assert b.status_code == 200, b.text
        v = api.user.post("/v1/feedback/vote", json={"battle_id": b.json()["battle_id"], "choice": "tie"}).json()
        assert sorted(v["versions"].values()) == ["v1.0", "v1.1"]  # two different versions, revealed after
