"""The steps of one round, each a function the controller calls in its phase:

    open_round   unclaimed feedback → a dataset version, claims, a running round   (phase idle → train)
    train        DPO/ORPO/KTO from the production adapter → candidate, as a job    (train → gate)
    evaluate     win rate vs production on held-out prompts + guard set → GateResult (the judged
                 battles kept with eval.leaderboard.save_comparison, so leaderboards count them)

Every step reads what it needs from the store (the round row, its dataset version, its held-out
prompts), so any of them can be re-run after a crash: the controller resumes in the phase it last
recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmloop.data.versions import write_version
from llmloop.eval.judges import load_judge
from llmloop.eval.leaderboard import save_comparison
from llmloop.eval.winrate import WinRateReport, compare_versions
from llmloop.inference.base import Engine, SamplingParams
from llmloop.loop import round_data
from llmloop.loop.policy import LoopPolicy, PolicyError, read_prompt_rows, read_prompts
from llmloop.store import Database, loop_events, registry, rounds
from llmloop.store.records import ModelVersion

StepFn = Callable[[str, str], None]  # (step name, message)


def open_round(db: Database, policy: LoopPolicy, data: round_data.RoundData, production: str) -> tuple[int, str]:
    """The round's rows as a new dataset version, then one transaction: the round row (with its
    held-out prompts), its feedback claims, the controller in phase ``train`` and the event.
    A crash between the two leaves an unused dataset version and nothing claimed."""
    if not data.train_rows:
        raise PolicyError(f"every usable row was held out or dropped ({data.stats}); lower data.holdout_share, "
                          "relax the filters, or wait for more feedback")
    rows, kind = round_data.training_rows(policy, data.train_rows)
    dv = write_version(db, rows, name=policy.data.dataset_name, kind=kind, source_format="loop_feedback",
                       note=f"loop round from {len(data.claims)} feedback items", created_by="loop")
    ref = f"{dv.dataset}@{dv.version}"
    first, last = data.vote_range()
    rid = rounds.open_round(
        db, production_version=production, first_vote_id=first, last_vote_id=last, claims=data.claims,
        dataset_version_id=dv.id, evidence={"dataset_version": ref, "holdout_prompts": data.holdout_prompts},
        data={"dataset": ref},
        event=("round_started", f"{data.pairs} new rows ({len(data.train_rows)} train, "
               f"{data.pairs - len(data.train_rows)} held out) from {len(data.claims)} feedback items → {ref}",
               {"stats": data.stats, "production": production, "votes": [first, last], "dataset_version": ref,
                "sources": policy.data.sources, "policy": policy.model_dump(mode="json")}),
    )
    return rid, ref


def _stage_config(policy: LoopPolicy, production: str, dataset: str, round_id: int):  # noqa: ANN202
    from llmloop.train.config import CONFIGS, load_config

    stage = policy.train.stage
    if stage not in CONFIGS:
        raise PolicyError(f"train.stage {stage!r} is not a training stage of this llmloop (it has "
                          f"{', '.join(sorted(CONFIGS))}); use one of those")
    # the one preset loader, as `llmloop train -c PRESET` reads it; the policy's fields over the preset's
    return load_config(stage, policy.train.preset, values={
        **policy.train.config, "model": production, "dataset": dataset,
        "register": {"enabled": True, "note": f"loop round {round_id}"},
    }, values_from="the loop policy's train.config")


def train(db: Database, policy: LoopPolicy, round_id: int, production: str, dataset: str) -> ModelVersion:
    """Train the candidate from ``production`` on ``dataset`` as a job like any other (submitted
    through ``train.job_runner.submit``, run by this process as its worker, so ``llmloop jobs`` lists it
    with its stage, status and log); ``candidate`` alias → it."""
    from llmloop.train.job_runner import run_submitted, submit

    config = _stage_config(policy, production, dataset, round_id)
    result = run_submitted(db, submit(db, policy.train.stage, config).id)
    candidate = result.model_version
    assert candidate is not None  # registration is enabled above
    registry.set_alias(db, "candidate", candidate.name, reason=f"loop round {round_id}")
    rounds.update_round(db, round_id, candidate_version=candidate.name, job_id=result.job.id)
    loop_events.add_event(db, round_id, "trained", f"{candidate.name} trained from {production} by job {result.job.id}",
                          {"candidate": candidate.name, "job_id": result.job.id, "dataset_version": dataset,
                           "train_loss": result.train_loss, "stage": policy.train.stage})
    return candidate


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    report: WinRateReport
    guard: dict[str, Any] | None = None
    prompts: dict[str, int] = field(default_factory=dict)
    comparison: str | None = None  # where eval.leaderboard.save_comparison kept the judged battles

    def evidence(self) -> dict[str, Any]:
        return {"passed": self.passed, "decision": self.reason, "win_rate": self.report.summary(),
                "guard": self.guard, "prompts": self.prompts, "comparison": self.comparison}


def _guard(engine: Engine, policy: LoopPolicy, candidate: str, production: str) -> dict[str, Any]:
    from llmloop.eval import text_metrics

    g = policy.gate.guard
    assert g is not None
    rows = read_prompt_rows(g.prompts)
    refs = []
    for i, (_, row) in enumerate(rows, 1):
        ref = row.get("reference", row.get("answer"))
        if not isinstance(ref, str):
            raise PolicyError(f"{g.prompts}: row {i}: a guard row needs a 'reference' string (the expected answer)")
        refs.append(ref)
    params = SamplingParams(max_tokens=g.max_tokens, temperature=0.0)
    scores = {}
    for v in (candidate, production):
        preds = [x.text for x in engine.chat_batch(v, [conv for conv, _ in rows], params)]
        if g.metric == "rougeL":
            scores[v] = text_metrics.rouge(preds, refs)["rougeL"]
        elif g.metric == "bleu":
            scores[v] = text_metrics.bleu(preds, refs) / 100
        else:
            scores[v] = text_metrics.exact_match(preds, refs)
    drop = scores[production] - scores[candidate]
    return {"metric": g.metric, "n": len(rows), "candidate": round(scores[candidate], 4),
            "production": round(scores[production], 4), "regression": round(drop, 4),
            "max_regression": g.max_regression, "passed": drop <= g.max_regression}


def evaluate(db: Database, engine: Engine, policy: LoopPolicy, round_id: int, candidate: str, production: str,
             holdout_prompts: list[list[dict[str, Any]]]) -> GateResult:
    """Win rate of ``candidate`` vs ``production`` on held-out prompts (the file's and the round's
    held-out production prompts), and the guard set; the gate's verdict with its numbers."""
    g = policy.gate
    file_prompts = read_prompts(g.prompts) if g.prompts else []
    prompts = file_prompts + holdout_prompts
    if not prompts:
        raise PolicyError(f"round {round_id}: the gate has no prompts (gate.prompts unset, no held-out pairs)")
    engine.load(registry.get(db, production))
    engine.load(registry.get(db, candidate))
    report = compare_versions(engine, candidate, production, prompts, load_judge(g.judge),
                              SamplingParams(max_tokens=g.max_tokens, temperature=g.temperature, seed=g.seed))
    # kept like every `eval compare`, so `eval leaderboard` counts the gate's battles too
    saved = save_comparison(db, report)
    ok_rate = report.win_rate >= g.min_win_rate
    ok_ci = report.ci_low > g.min_ci_low
    reason = (f"win rate {report.win_rate:.3f} {'>=' if ok_rate else '<'} {g.min_win_rate}, "
              f"CI low {report.ci_low:.3f} {'>' if ok_ci else '<='} {g.min_ci_low}")
    guard = _guard(engine, policy, candidate, production) if g.guard else None
    if guard is not None:
        reason += (f"; guard {guard['metric']} {guard['candidate']:.3f} vs {guard['production']:.3f} "
                   f"(drop {guard['regression']:.3f} {'<=' if guard['passed'] else '>'} {guard['max_regression']})")
    passed = ok_rate and ok_ci and (guard is None or guard["passed"])
    registry.update_metrics(db, candidate, {f"win_rate_vs_{production}": report.summary(),
                                            **({f"guard_vs_{production}": guard} if guard else {})})
    return GateResult(passed, reason, report, guard, {"file": len(file_prompts), "holdout": len(holdout_prompts)},
                      str(saved))
