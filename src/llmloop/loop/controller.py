"""The loop controller: a persistent state machine in the store, advanced one ``tick`` at a time.

    idle ──trigger──▶ train ──▶ gate ──pass──▶ canary stage 0 … n ──▶ promoted
                                              └─fail──▶ rejected     └─signal──▶ rolled_back
    (any error: failed, the round's feedback released for the next round)

The phase lives in ``loop_controller`` and every move is written together with the event that
explains it, so ``llmloop loop run`` can be killed at any moment (SIGKILL included) and started
again: it resumes in the phase and rollout stage it last recorded. A promotion or rollback is first
written down as a pending *decision*, then carried out (split, aliases), then closed; a restart
finishes a decision it finds pending, so a half-done rollback never re-exposes the candidate.

Admin commands (``loop promote|rollback|pause|resume``) act on the same state from another process;
the controller's moves are compare-and-set (``StaleState`` when someone else moved first).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmloop.errors import UserError
from llmloop.inference.base import Engine
from llmloop.loop import canary, round_data
from llmloop.loop import round_steps as steps
from llmloop.loop.policy import LoopPolicy
from llmloop.store import Database, loop_events, registry, rounds, traffic
from llmloop.store.db import utcnow
from llmloop.store.loop_events import StaleState

SayFn = Callable[[str, str], None]  # (kind, message)
PRODUCTION, CANDIDATE = "production", "candidate"


@dataclass(frozen=True)
class TickResult:
    action: str  # waiting | paused | started | trained | gate | stage | promoted | rejected | rolled_back | failed | canary
    round_id: int | None
    message: str


@dataclass(frozen=True)
class TriggerStatus:
    ready: bool
    pairs: int
    reason: str
    next_check: dt.datetime | None
    data: round_data.RoundData | None = None


def trigger_status(db: Database, policy: LoopPolicy, force: bool = False) -> TriggerStatus:
    """Would a round start now? (pending pairs, days since the last decided round, manual mode)."""
    t = policy.trigger
    data = round_data.collect(db, policy)
    now = utcnow()
    last = rounds.last_finished(db)
    due = None
    if last is not None and last.finished_at is not None and t.min_days_since_last_round > 0:
        due = last.finished_at + dt.timedelta(days=t.min_days_since_last_round)
    if data.pairs < t.min_new_pairs:
        return TriggerStatus(False, data.pairs, f"{data.pairs} new pairs < trigger.min_new_pairs {t.min_new_pairs}",
                             now + dt.timedelta(seconds=t.poll_seconds), data)
    if due is not None and now < due and not force:
        return TriggerStatus(False, data.pairs, f"last round ended {last.finished_at:%Y-%m-%d %H:%M}; "
                             f"trigger.min_days_since_last_round {t.min_days_since_last_round} → not before {due:%Y-%m-%d %H:%M}",
                             due, data)
    if t.manual and not force:
        return TriggerStatus(False, data.pairs, "trigger.manual: waiting for `llmloop loop run --now`", None, data)
    return TriggerStatus(True, data.pairs, f"{data.pairs} new pairs >= {t.min_new_pairs}", now, data)


class Controller:
    def __init__(self, db: Database, policy: LoopPolicy, engine: Engine | None = None, say: SayFn | None = None,
                 actor: str = "loop") -> None:
        self.db, self.policy, self.actor = db, policy, actor
        self._engine = engine
        self.say = say or (lambda kind, msg: None)
        self.last_gate: steps.GateResult | None = None  # the last gate's full report (samples included)
        self.timings: dict[str, float] = {}  # seconds spent per phase by this controller

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from llmloop.inference.embedded import EmbeddedEngine

            self._engine = EmbeddedEngine()
        return self._engine

    # -- the state machine ------------------------------------------------------------------------
    def tick(self, force: bool = False) -> TickResult:
        """Advance by one step. Long steps (training, the gate) run inside the call."""
        t = time.monotonic()
        phase = loop_events.get_state(self.db).phase
        try:
            return self._tick(force)
        finally:
            key = {"idle": "collect", "gate": "evaluate"}.get(phase, phase)
            self.timings[key] = self.timings.get(key, 0.0) + time.monotonic() - t

    def _tick(self, force: bool) -> TickResult:
        st = loop_events.get_state(self.db)
        if st.phase == loop_events.IDLE:
            return self._idle(st, force)
        rnd = rounds.get_round(self.db, st.round_id)
        if st.data.get("decision"):
            return self._carry_out(st, rnd)
        if rnd.status != "running":  # closed by someone else; make the state agree
            loop_events.transition(self.db, round_id=None, phase=loop_events.IDLE)
            return TickResult("waiting", rnd.id, f"round {rnd.id} is {rnd.status}")
        try:
            if st.phase == "train":
                cand = rnd.candidate_version or steps.train(self.db, self.policy, rnd.id, rnd.production_version,
                                                             st.data["dataset"]).name
                loop_events.transition(self.db, round_id=rnd.id, phase="gate", data={**st.data, "candidate": cand},
                                       expect=(rnd.id, "train", 0))
                return self._said("trained", rnd.id, f"{cand} trained from {rnd.production_version}")
            if st.phase == "gate":
                return self._gate(st, rnd)
            if st.phase == "canary":
                return self._canary(st, rnd)
        except StaleState as e:
            return TickResult("waiting", rnd.id, str(e))
        except Exception as e:  # the round failed: record it, give its feedback back, undo any exposure
            self._fail(rnd.id, st, e)
            raise
        raise RuntimeError(f"unknown controller phase {st.phase!r}")

    def _said(self, action: str, round_id: int | None, message: str) -> TickResult:
        self.say(action, message)
        return TickResult(action, round_id, message)

    def _idle(self, st: loop_events.ControllerState, force: bool) -> TickResult:
        if st.paused:
            return TickResult("paused", None, "paused (llmloop loop resume)")
        trig = trigger_status(self.db, self.policy, force=force)
        if not trig.ready:
            return TickResult("waiting", None, trig.reason)
        production = registry.get(self.db, self.policy.train.from_alias).name
        data = round_data.collect(self.db, self.policy, label=True) if "judge" in self.policy.data.sources else trig.data
        assert data is not None
        rid, ref = steps.open_round(self.db, self.policy, data, production)
        return self._said("started", rid, f"round {rid}: {trig.reason}; production {production}; dataset {ref}")

    def _gate(self, st: loop_events.ControllerState, rnd: Any) -> TickResult:
        cand = st.data["candidate"]
        result = steps.evaluate(self.db, self.engine, self.policy, rnd.id, cand, rnd.production_version,
                                rnd.evidence.get("holdout_prompts") or [])
        self.last_gate = result
        ev = {**result.evidence(), "candidate": cand, "production": rnd.production_version,
              "dataset_version": st.data.get("dataset")}
        rounds.update_round(self.db, rnd.id, evidence={**rnd.evidence, "win_rate": result.report.summary(),
                                                        "decision": result.reason, "gate": ev})
        if not result.passed:
            registry.remove_alias(self.db, CANDIDATE)
            rounds.finish_round(self.db, rnd.id, "rejected", evidence={"decision": result.reason},
                                event=("gate_failed", f"{cand} rejected: {result.reason}", ev), actor=self.actor)
            return self._said("rejected", rnd.id, f"{cand} rejected by the gate: {result.reason}")
        loop_events.add_event(self.db, rnd.id, "gate_passed", f"{cand} passed: {result.reason}", ev, self.actor)
        if not self.policy.rollout.stages:
            return self.decide(rnd.id, "promote", f"gate passed ({result.reason}); no rollout stages", ev,
                               expect=(rnd.id, "gate", 0))
        self._start_stage(rnd.id, 0, {**st.data, "started_at": utcnow().isoformat()}, expect=(rnd.id, "gate", 0))
        return self._said("gate", rnd.id, f"{cand} passed the gate ({result.reason}); canary begins")

    # -- rollout ----------------------------------------------------------------------------------
    def _weights(self, i: int) -> dict[str, float]:
        pct = self.policy.rollout.stages[i].percent
        return {PRODUCTION: 100 - pct, CANDIDATE: pct} if pct < 100 else {CANDIDATE: 100.0}

    def _scrape(self) -> canary.Snapshot | None:
        try:
            return canary.scrape(self.policy.rollout.gateways, self.policy.rollout.endpoint)
        except canary.ScrapeError as e:
            self.say("warning", str(e))
            return None

    def _start_stage(self, round_id: int, i: int, data: dict[str, Any], expect: tuple[int | None, str, int]) -> None:
        snap = self._scrape() or {}
        if i == 0:
            data["baseline"] = snap
        data["stage_baseline"] = snap
        stage = self.policy.rollout.stages[i]
        loop_events.transition(self.db, round_id=round_id, phase="canary", stage_index=i, data=data, expect=expect,
                               event=("stage_started", f"canary stage {i + 1}/{len(self.policy.rollout.stages)}: "
                                      f"{stage.percent:g}% of traffic to {data['candidate']}",
                                      {"stage": stage.model_dump(), "weights": self._weights(i)}), actor=self.actor)
        traffic.set_split(self.db, self._weights(i), reason=f"loop round {round_id}: canary stage {i + 1}", actor=self.actor)

    def _canary(self, st: loop_events.ControllerState, rnd: Any) -> TickResult:
        i, cand, prod = st.stage_index, st.data["candidate"], rnd.production_version
        current = traffic.get_split(self.db)
        if current is None or current.weights != self._weights(i):  # a crash between the move and the split
            traffic.set_split(self.db, self._weights(i), reason=f"loop round {rnd.id}: canary stage {i + 1} (re-applied)",
                              actor=self.actor)
        snap = self._scrape()
        if snap is None:
            timed_out = self._stage_timeout(st, rnd, None)
            return timed_out or TickResult("canary", rnd.id, "no evidence this poll (gateway metrics unreadable)")
        started = dt.datetime.fromisoformat(st.data["started_at"])
        thumbs = loop_events.thumbs_by_version(self.db, started, (cand, prod))
        whole = canary.window(snap, st.data.get("baseline") or {})
        a = canary.assess(whole, thumbs, cand, prod, self.policy.rollback, previous_p=st.data.get("min_p"))
        ev = {**a.evidence(), "stage": i, "candidate": cand, "production": prod}
        if a.rollback:
            return self.decide(rnd.id, "rollback", "; ".join(a.reasons), ev, expect=(rnd.id, "canary", i))
        min_p = {s.name: s.p for s in a.signals if s.worse}
        if min_p != st.data.get("min_p"):
            loop_events.update_state_data(self.db, {"min_p": min_p}, expect=(rnd.id, "canary", i))
        stage = self.policy.rollout.stages[i]
        seen = canary.window(snap, st.data.get("stage_baseline") or {}).get(cand, {}).get("requests", 0.0)
        minutes = (utcnow() - st.phase_started_at).total_seconds() / 60 if st.phase_started_at else 0.0
        progress = (f"stage {i + 1}/{len(self.policy.rollout.stages)} ({stage.percent:g}%): {seen:g}/{stage.min_requests} "
                    f"candidate requests, {minutes:.1f}/{stage.min_minutes:g} min")
        if seen < stage.min_requests or minutes < stage.min_minutes:
            return self._stage_timeout(st, rnd, seen) or TickResult("canary", rnd.id, progress)
        if loop_events.get_state(self.db).paused:
            return TickResult("paused", rnd.id, progress + "; paused, holding this stage")
        if i + 1 == len(self.policy.rollout.stages):
            return self.decide(rnd.id, "promote", f"every canary stage passed ({progress})", ev, expect=(rnd.id, "canary", i))
        loop_events.add_event(self.db, rnd.id, "stage_passed", progress, ev, self.actor)
        self._start_stage(rnd.id, i + 1, dict(st.data), expect=(rnd.id, "canary", i))
        return self._said("stage", rnd.id, f"{progress} → stage {i + 2} ({self.policy.rollout.stages[i + 1].percent:g}%)")

    def _stage_timeout(self, st: loop_events.ControllerState, rnd: Any, seen: float | None) -> TickResult | None:
        """A stage past its ``timeout_minutes`` without its requests (``seen`` None: no readable
        metrics): roll back for "no traffic", or with ``on_timeout: hold`` record it once and hold."""
        i = st.stage_index
        stage, stages = self.policy.rollout.stages[i], self.policy.rollout.stages
        minutes = (utcnow() - st.phase_started_at).total_seconds() / 60 if st.phase_started_at else 0.0
        if minutes < stage.timeout_minutes:
            return None
        seen_text = "no readable gateway metrics" if seen is None else f"{seen:g}/{stage.min_requests} candidate requests"
        reason = (f"no traffic: canary stage {i + 1}/{len(stages)} ({stage.percent:g}%) had {seen_text} after "
                  f"{minutes:.1f} min (rollout.stages[{i}].timeout_minutes {stage.timeout_minutes:g})")
        ev = {"stage": i, "candidate": st.data["candidate"], "production": rnd.production_version,
              "candidate_requests": seen, "min_requests": stage.min_requests, "minutes": round(minutes, 2),
              "timeout_minutes": stage.timeout_minutes, "on_timeout": self.policy.rollout.on_timeout}
        if self.policy.rollout.on_timeout == "rollback":
            return self.decide(rnd.id, "rollback", reason, ev, expect=(rnd.id, "canary", i))
        if st.data.get("timeout_noted") != i:  # hold: say so once per stage, then keep waiting
            loop_events.update_state_data(self.db, {"timeout_noted": i}, expect=(rnd.id, "canary", i))
            loop_events.add_event(self.db, rnd.id, "stage_timeout", f"{reason}; holding (rollout.on_timeout: hold)",
                                  ev, self.actor)
            self.say("stage_timeout", f"{reason}; holding until it has its requests or an admin decides")
        return None

    # -- decisions ----------------------------------------------------------------------------------
    def decide(self, round_id: int, action: str, reason: str, evidence: dict[str, Any],
               expect: tuple[int | None, str, int] | None = None) -> TickResult:
        """Write down a promote/rollback decision, then carry it out (a restart finishes it)."""
        loop_events.update_state_data(self.db, {"decision": {"action": action, "reason": reason, "evidence": evidence,
                                                             "actor": self.actor}}, expect=expect)
        st = loop_events.get_state(self.db)
        return self._carry_out(st, rounds.get_round(self.db, round_id))

    def _carry_out(self, st: loop_events.ControllerState, rnd: Any) -> TickResult:
        action, message = carry_out(self.db, st, rnd, self.actor)
        return self._said(action, rnd.id, message)

    def _fail(self, round_id: int, st: loop_events.ControllerState, e: BaseException) -> None:
        if st.phase == "canary":
            traffic.set_split(self.db, {PRODUCTION: 100.0}, reason=f"loop round {round_id} failed", actor=self.actor)
        registry.remove_alias(self.db, CANDIDATE)
        rounds.finish_round(self.db, round_id, "failed", evidence={"error": f"{type(e).__name__}: {e}"},
                            event=("failed", f"round {round_id} failed in phase {st.phase}: {type(e).__name__}: {e}",
                                   {"phase": st.phase}), actor=self.actor, release=True)
        self.say("failed", f"round {round_id} failed: {e}")

    # -- running ------------------------------------------------------------------------------------
    def run(self, *, force_first: bool = False, until_idle: bool = False, max_seconds: float | None = None,
            should_stop: Callable[[], bool] = lambda: False, poll_seconds: float | None = None,
            keep_going: bool = False) -> TickResult:
        """Tick until stopped. ``until_idle``: return once a round has been decided (or none can start);
        ``keep_going``: a failed round is recorded and the controller goes on (``loop run``)."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        poll = poll_seconds if poll_seconds is not None else self.policy.trigger.poll_seconds
        force, started = force_first, False
        while True:
            try:
                r = self.tick(force=force)
            except Exception as e:  # the round is recorded as failed already
                if not keep_going:
                    raise
                r = TickResult("failed", None, f"{type(e).__name__}: {e}")
            force = False
            started = started or r.action != "waiting"
            if r.action in ("promoted", "rejected", "rolled_back", "failed") and until_idle:
                return r
            if until_idle and r.action in ("waiting", "paused") and loop_events.get_state(self.db).phase == loop_events.IDLE:
                return r
            if should_stop() or (deadline is not None and time.monotonic() > deadline):
                return r
            if r.action in ("waiting", "paused", "canary", "failed"):
                wake = time.monotonic() + poll
                while time.monotonic() < wake and not should_stop():
                    time.sleep(min(0.2, poll))


def carry_out(db: Database, st: loop_events.ControllerState, rnd: Any, actor: str) -> tuple[str, str]:
    """Finish the pending decision in ``st`` (promote or roll back ``rnd``'s candidate); idempotent."""
    d = st.data["decision"]
    cand = st.data.get("candidate") or rnd.candidate_version
    actor = d.get("actor", actor)
    if d["action"] == "promote":
        if registry.resolve_alias(db, PRODUCTION) != cand:
            registry.set_alias(db, PRODUCTION, cand, reason=f"loop round {rnd.id}: {d['reason']}")
        traffic.set_split(db, {PRODUCTION: 100.0}, reason=f"loop round {rnd.id}: {cand} promoted", actor=actor)
        registry.remove_alias(db, CANDIDATE)
        rounds.finish_round(db, rnd.id, "promoted", evidence={"decision": d["reason"], "promoted_at": utcnow().isoformat()},
                            event=("promoted", f"{cand} is production: {d['reason']}", d["evidence"]), actor=actor)
        return "promoted", f"{cand} promoted: {d['reason']}"
    traffic.set_split(db, {PRODUCTION: 100.0}, reason=f"loop round {rnd.id}: {cand} rolled back", actor=actor)
    if registry.resolve_alias(db, PRODUCTION) != rnd.production_version:
        registry.set_alias(db, PRODUCTION, rnd.production_version, reason=f"rollback: {d['reason']}")
    registry.remove_alias(db, CANDIDATE)
    rounds.finish_round(db, rnd.id, "rolled_back", evidence={"decision": d["reason"]},
                        event=("rolled_back", f"{cand} rolled back: {d['reason']}", d["evidence"]), actor=actor)
    return "rolled_back", f"{cand} rolled back: {d['reason']}"


class AdminError(UserError, ValueError):
    pass


def set_paused(db: Database, paused: bool, *, reason: str = "", actor: str) -> None:
    """``loop pause|resume``: while paused no round starts and no canary stage advances (rollbacks still
    happen); recorded as an event of the current round with ``reason`` and ``actor``."""
    loop_events.set_paused(db, paused, reason=reason, actor=actor)


def admin(db: Database, action: str, *, reason: str, actor: str) -> str:
    """``loop promote|rollback`` by a person: decided now, with ``reason`` as the evidence.

    During a canary (or at the gate) the round's candidate is promoted or rolled back. With no round
    in progress, ``rollback`` puts production back to what it was before the last promotion.
    """
    if action not in ("promote", "rollback"):
        raise AdminError(f"unknown admin action {action!r}; use promote or rollback")
    st = loop_events.get_state(db)
    if st.phase in ("gate", "canary"):
        rnd = rounds.get_round(db, st.round_id)
        loop_events.update_state_data(db, {"decision": {"action": action, "reason": f"admin: {reason}",
                                                        "evidence": {"admin": actor, "reason": reason}, "actor": actor}},
                                      expect=(st.round_id, st.phase, st.stage_index))
        return carry_out(db, loop_events.get_state(db), rnd, actor)[1]
    if st.phase != loop_events.IDLE:
        raise AdminError(f"round {st.round_id} is in phase {st.phase}: there is no candidate to {action} yet; "
                         "wait for the gate, or `llmloop loop pause`")
    if action == "promote":
        raise AdminError("no round is in progress, so there is no candidate to promote; "
                         "use `llmloop models alias production VERSION` to move production by hand")
    last = rounds.last_finished(db, ("promoted",))
    if last is None:
        raise AdminError("no round was ever promoted: nothing to roll back")
    current = registry.resolve_alias(db, PRODUCTION)
    registry.set_alias(db, PRODUCTION, last.production_version, reason=f"admin rollback of round {last.id}: {reason}")
    traffic.set_split(db, {PRODUCTION: 100.0}, reason=f"admin rollback of round {last.id}", actor=actor)
    rounds.update_round(db, last.id, status="rolled_back", evidence={**last.evidence, "rolled_back_by": actor})
    loop_events.add_event(db, last.id, "rolled_back", f"admin rolled production back from {current} to "
                          f"{last.production_version}: {reason}", {"from": current, "to": last.production_version}, actor)
    return f"production is {last.production_version} again (was {current})"


@dataclass(frozen=True)
class RoundOutcome:
    status: str  # skipped | promoted | rejected | rolled_back | failed
    round_id: int | None
    pairs: int
    production_before: str
    production_after: str
    candidate: str | None = None
    dataset_version: str | None = None
    job_id: str | None = None
    gate: steps.GateResult | None = None
    timings: dict[str, float] | None = None
    reason: str = ""


def run_once(db: Database, policy: LoopPolicy, engine: Engine | None = None, say: SayFn | None = None,
             force: bool = True, poll_seconds: float | None = None) -> RoundOutcome:
    """One whole round now (``loop run-once``): trigger thresholds apply, ``min_days`` and ``manual``
    are overridden by ``force``; waits through the canary stages when the policy has them."""
    production = registry.get(db, policy.train.from_alias).name
    ctl = Controller(db, policy, engine, say)
    if loop_events.get_state(db).phase == loop_events.IDLE:
        first = ctl.tick(force=force)
        if first.action != "started":
            return RoundOutcome("skipped", None, trigger_status(db, policy, force=True).pairs, production, production,
                                reason=first.message, timings=ctl.timings)
    r = ctl.run(until_idle=True, poll_seconds=poll_seconds)
    rnd = rounds.get_round(db, r.round_id) if r.round_id else rounds.list_rounds(db)[-1]
    dv = None
    if rnd.dataset_version_id:
        from llmloop.store import datasets

        v = datasets.get_version_by_id(db, rnd.dataset_version_id)
        dv = f"{v.dataset}@{v.version}"
    pairs = sum(c.outcome in ("train", "holdout") for c in loop_events.claims_of(db, rnd.id))
    return RoundOutcome(rnd.status, rnd.id, pairs, rnd.production_version, registry.get(db, PRODUCTION).name,
                        rnd.candidate_version, dv, rnd.job_id, ctl.last_gate, ctl.timings,
                        rnd.evidence.get("decision", rnd.evidence.get("error", "")))
