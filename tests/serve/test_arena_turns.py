"""Multi-turn arena battles (as in Chatbot Arena): the same two anonymous versions answer a follow-up,
each side continuing its own conversation; the vote ends the battle and judges all of it, and
becomes a pair whose sides hold each conversation. Through a real server, checked in the store."""

from __future__ import annotations

import httpx
import pytest

from llmloop.data import preferences
from llmloop.data.export import llamafactory_rows
from llmloop.data.export_targets import openai_rows, trl_rows
from llmloop.data.rows import DataError
from llmloop.serve.capture import MAX_TURNS
from llmloop.store import feedback, feedback_queries
from llmloop.store.ingest import BattleTurnOp, UnitRejected, ingest

HI = [{"role": "user", "content": "My lamp arrived broken."}]


def _arena(server: str, messages: list[dict], **extra) -> httpx.Response:  # noqa: ANN003
    return httpx.post(f"{server}/v1/arena", json={"messages": messages, "user": "voter", "max_tokens": 6, **extra},
                      timeout=60)


def _say(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_a_battle_goes_on_with_each_side_keeping_its_own_conversation(server: str, versions) -> None:
    first = _arena(server, HI).json()
    bid = first["battle_id"]
    assert first["turn"] == 1
    answers = {a["slot"]: a for a in first["answers"]}
    for turn, text in ((2, "And the charger?"), (3, "Can you send a new one today?")):
        r = _arena(server, _say(text), battle_id=bid)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["battle_id"] == bid and body["turn"] == turn and [a["slot"] for a in body["answers"]] == ["a", "b"]
        battle = feedback.get_battle(versions, bid)
        assert (battle.request_id_a, battle.request_id_b) == tuple(a["request_id"] for a in body["answers"])
        assert battle.messages == HI  # the shared first prompt stays
        for a in body["answers"]:  # each side answered its own history: its earlier answer, then the follow-up
            done = feedback.get_completion(versions, a["request_id"])
            assert done.version == (battle.version_a if a["slot"] == "a" else battle.version_b)
            assert done.messages[-2:] == [{"role": "assistant", "content": answers[a["slot"]]["content"]},
                                          {"role": "user", "content": text}]
            assert done.output == a["content"]
        answers = {a["slot"]: a for a in body["answers"]}
    state = feedback_queries.battle_state(versions, bid)
    assert state.turns == 3 and not state.voted and len(state.history_a) == 6
    assert httpx.post(f"{server}/v1/feedback/vote", json={"battle_id": bid, "choice": "a", "user": "voter"}).status_code == 201

    (vote,) = feedback.voted_battles(versions)
    assert vote.output_a == answers["a"]["content"] and len(vote.messages_a) == 5  # user, (assistant, user) × 2
    (pair,) = preferences.pairs_from_votes([vote])
    assert pair["prompt"] == HI and pair["provenance"]["turns"] == 3
    assert [m["role"] for m in pair["chosen"]] == ["assistant", "user", "assistant", "user", "assistant"]
    assert pair["chosen"][1:4:2] == pair["rejected"][1:4:2] == [_say("And the charger?")[0],
                                                                   _say("Can you send a new one today?")[0]]
    assert pair["chosen"][-1]["content"] == answers["a"]["content"]
    assert pair["rejected"][-1]["content"] == answers["b"]["content"]
    assert pair["chosen"][0]["content"] == state.history_a[1]["content"]  # side a's first answer
    # TRL's conversational layout keeps the conversations; one-reply formats refuse instead of cutting them
    assert trl_rows("preference", [pair])[0]["chosen"] == pair["chosen"]
    for export in (lambda: llamafactory_rows("preference", [pair]), lambda: openai_rows("preference", [pair]),
                   lambda: trl_rows("preference", [pair], style="plain")):
        with pytest.raises(DataError, match="row 1 is a multi-turn pair"):
            export()

    # a vote ends the battle
    over = _arena(server, _say("One more thing"), battle_id=bid)
    assert over.status_code == 409 and over.json()["error"]["code"] == "battle_over"


def test_follow_ups_that_cannot_go_on_are_refused(server: str, versions) -> None:
    missing = _arena(server, _say("hello?"), battle_id="battle-nope")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "battle_id"
    bid = _arena(server, HI).json()["battle_id"]
    bad = _arena(server, [{"role": "assistant", "content": "I answer myself"}], battle_id=bid)
    assert bad.status_code == 422 and "user's turn" in bad.json()["error"]["message"]
    for _ in range(MAX_TURNS - 1):
        assert _arena(server, _say("and then?"), battle_id=bid).status_code == 200
    full = _arena(server, _say("and then?"), battle_id=bid)
    assert full.status_code == 422 and full.json()["error"]["code"] == "too_many_turns"
    assert feedback_queries.battle_state(versions, bid).turns == MAX_TURNS


def test_a_turn_that_raced_another_is_refused_and_nothing_is_stored(server: str, versions) -> None:
    """Two follow-ups sent at once continue the same answers: the first wins, the second is refused whole."""
    bid = _arena(server, HI).json()["battle_id"]
    state = feedback_queries.battle_state(versions, bid)

    def turn(tag: str) -> BattleTurnOp:
        return BattleTurnOp(battle_id=bid, user_id="voter", previous=(state.request_id_a, state.request_id_b),
                            answers=((f"chatcmpl-{tag}a", state.version_a, [*state.history_a, *_say(tag)], "x"),
                                     (f"chatcmpl-{tag}b", state.version_b, [*state.history_b, *_say(tag)], "y")))

    with versions.begin() as conn:
        first, second = ingest(conn, [[turn("one")], [turn("two")]])
    assert not isinstance(first, UnitRejected)
    assert isinstance(second, UnitRejected) and "went on meanwhile" in str(second)
    now = feedback_queries.battle_state(versions, bid)
    assert (now.request_id_a, now.request_id_b, now.turns) == ("chatcmpl-onea", "chatcmpl-oneb", 2)
    with pytest.raises(feedback.FeedbackError):
        feedback.get_completion(versions, "chatcmpl-twoa")


def test_the_judge_skips_multi_turn_battles(server: str, versions) -> None:
    """An AI judge reads one prompt and two answers; a battle whose sides answered their own
    histories has no such prompt, so it is left to the users' votes."""
    from llmloop.eval.judges import load_judge

    one = _arena(server, HI).json()["battle_id"]
    two = _arena(server, HI).json()["battle_id"]
    assert _arena(server, _say("And the charger?"), battle_id=two).status_code == 200
    battles = {b.battle_id: b for b in feedback_queries.unvoted_battles(versions)}
    assert (battles[one].turns, battles[two].turns) == (1, 2)
    judged = preferences.pairs_from_judge([battles[two]], load_judge("python:llmloop.demo.users:preference_score"))
    assert judged.rows == [] and judged.dropped == {"multi-turn (the judge reads one turn)": 1}
