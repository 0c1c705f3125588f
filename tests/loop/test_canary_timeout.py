"""A canary stage that never gets its requests does not hold the candidate for ever: after
``rollout.stages[i].timeout_minutes`` it is rolled back for "no traffic" (the default), or, with
``rollout.on_timeout: hold``, the overdue stage is recorded once and keeps waiting."""

import time

import pytest

from llmloop.loop.controller import Controller
from llmloop.loop.policy import PolicyError, RolloutStage, load_policy
from llmloop.loop.status import loop_status
from llmloop.serve.process import GatewayProcess
from llmloop.store import loop_events, open_database, registry, rounds, traffic

from test_round import _votes, make_policy, production

TIMEOUT_MIN = 0.01  # 0.6 s


def _metrics(db):
    from prometheus_client.parser import text_string_to_metric_families

    from llmloop.loop.loop_metrics import render

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(render(db).decode()) for s in fam.samples}


def _to_canary(ctl, db):
    while loop_events.get_state(db).phase != "canary":
        ctl.tick(force=True)


def test_a_stage_without_traffic_is_rolled_back_for_no_traffic_by_default(db, tiny_model_dir, tmp_path):
    """No gateway answers (its metrics are unreadable): after the timeout the candidate goes."""
    production(db, tiny_model_dir)
    _votes(db, 6)
    pol = make_policy(tmp_path, rollout={"gateways": ["http://127.0.0.1:9"],
                                         "stages": [{"percent": 10, "min_requests": 5, "timeout_minutes": TIMEOUT_MIN}]})
    assert pol.rollout.on_timeout == "rollback" and RolloutStage(percent=5).timeout_minutes == 1440
    ctl = Controller(db, pol)
    _to_canary(ctl, db)
    assert traffic.get_split(db).weights == {"production": 90.0, "candidate": 10.0}
    m = _metrics(db)  # /metrics' loop series: each version's current share, the phase
    assert m[("llmloop_loop_rollout_share", (("version", "v1.0"),))] == pytest.approx(0.9)
    assert m[("llmloop_loop_rollout_share", (("version", "v1.1"),))] == pytest.approx(0.1)
    assert m[("llmloop_loop_phase", (("phase", "canary"),))] == 1 and m[("llmloop_loop_rollbacks", ())] == 0
    assert ctl.tick().action == "canary"  # before the timeout: no evidence, the stage holds
    time.sleep(TIMEOUT_MIN * 60 + 0.1)
    r = ctl.tick()
    assert r.action == "rolled_back" and "no traffic" in r.message and "no readable gateway metrics" in r.message
    (rnd,) = rounds.list_rounds(db)
    assert rnd.status == "rolled_back" and rnd.evidence["decision"].startswith("no traffic")
    assert registry.get(db, "production").name == "v1.0" and registry.resolve_alias(db, "candidate") is None
    assert traffic.get_split(db).weights == {"production": 100.0}
    ev = loop_events.list_events(db, rnd.id, kinds=("rolled_back",))[0].evidence
    assert ev["stage"] == 0 and ev["candidate_requests"] is None and ev["timeout_minutes"] == TIMEOUT_MIN
    m = _metrics(db)
    assert m[("llmloop_loop_rollbacks", ())] == 1 and m[("llmloop_loop_rounds", (("status", "rolled_back"),))] == 1
    assert m[("llmloop_loop_rollout_share", (("version", "v1.0"),))] == 1.0
    assert ("llmloop_loop_rollout_share", (("version", "v1.1"),)) not in m
    assert not any(k[0] == "llmloop_loop_feedback_to_rollout_seconds" for k in m)  # nothing was promoted


def test_timeout_shorter_than_min_minutes_is_refused(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("gate: {judge: 'python:a:b', prompts: x.jsonl}\nrollout: {gateways: [http://g], "
                 "stages: [{percent: 5, min_minutes: 30, timeout_minutes: 10}], on_timeout: later}\n")
    with pytest.raises(PolicyError) as e:
        load_policy(p)
    msg = str(e.value)
    assert "rollout.stages.0" in msg and "shorter than min_minutes 30" in msg and "rollout.on_timeout" in msg


@pytest.mark.slow
def test_hold_records_the_overdue_stage_once_then_rollback_names_the_missing_requests(tiny_model_dir, tmp_path,
                                                                                      llmloop_home):
    """A real gateway nobody calls: its /metrics are readable and show no candidate requests."""
    db = open_database()
    production(db, tiny_model_dir)
    _votes(db, 6)
    stages = [{"percent": 50, "min_requests": 5, "timeout_minutes": TIMEOUT_MIN},
              {"percent": 100, "min_requests": 5, "timeout_minutes": TIMEOUT_MIN}]
    with GatewayProcess(llmloop_home) as gw:
        hold = make_policy(tmp_path, rollout={"gateways": [gw.url], "stages": stages, "on_timeout": "hold"})
        ctl = Controller(db, hold)
        _to_canary(ctl, db)
        time.sleep(TIMEOUT_MIN * 60 + 0.1)
        said = []
        ctl.say = lambda kind, msg: said.append(kind)
        for _ in range(3):
            r = ctl.tick()
            assert r.action == "canary" and "0/5 candidate requests" in r.message, r
        st = loop_events.get_state(db)
        assert (st.phase, st.stage_index) == ("canary", 0) and said == ["stage_timeout"]
        (rnd,) = rounds.list_rounds(db)
        (ev,) = loop_events.list_events(db, rnd.id, kinds=("stage_timeout",))
        assert "no traffic" in ev.message and "holding" in ev.message
        assert ev.evidence["candidate_requests"] == 0 and ev.evidence["on_timeout"] == "hold"
        assert traffic.get_split(db).weights == {"production": 50.0, "candidate": 50.0}  # the share is kept
        assert loop_status(db, hold)["stage_timeout"].endswith("(hold if it has fewer than 5 candidate requests "
                                                               "by then); overdue, holding")

        # the same round under the default action (e.g. the policy edited, the controller restarted)
        r = Controller(db, make_policy(tmp_path, rollout={"gateways": [gw.url], "stages": stages})).tick()
    assert r.action == "rolled_back" and "no traffic: canary stage 1/2 (50%) had 0/5 candidate requests" in r.message
    assert rounds.list_rounds(db)[0].status == "rolled_back"
    assert registry.get(db, "production").name == "v1.0" and traffic.get_split(db).weights == {"production": 100.0}
