"""Durable feedback ingest: llmloop's group-commit writer vs one transaction per event, same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/feedback_ingest.py --events 20000 --producers 128
    … --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres   # also PostgreSQL

Producers are shaped as the gateway's handlers are: coroutines on one event loop, each submitting
one event (a thumbs-up or a vote) and awaiting its acknowledgement before sending the next; an
acknowledgement means committed (SQLite in WAL mode with ``synchronous=FULL``, PostgreSQL with its
default synchronous commit). Latency is submit → acknowledgement per event; throughput is events
acknowledged per second. Closed loop (``--producers`` each waiting for its acknowledgement) gives the
most the writer sustains — but its mean latency is producers / throughput by Little's law (128 at
10,000/s is 12.8 ms), so the latency goal is measured open loop: events offered at ``--rate``
(10,000/s) whatever the acknowledgements do, latency counted from each event's scheduled time.

Baseline: ``store.ingest.ingest_now`` with one event per call — the same validation and insert, but a
transaction (and an fsync) per event, run on a pool of 16 store threads, as a gateway without group
commit would (``ThreadLanes.store``).
llmloop: ``store.ingest.GroupCommitWriter`` — one writer thread commits whatever is queued as one
transaction (validation with one query per table, multi-row inserts), then acknowledges every event
in it — awaited two ways: ``asyncio.wrap_future(writer.submit(ops))`` (what ``FeedbackService._write``
does today: one event-loop wake-up per acknowledgement) and ``writer.submit_async(ops)`` (one wake-up
per commit for all of that loop's units). Afterwards
every acknowledged id is checked to be in the store. The load average is printed with the numbers:
an fsync on a busy machine costs ~10× one on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MSG = [{"role": "user", "content": "Where is my order?"}]


def _db(url: str | None, home: Path):  # noqa: ANN202
    import os

    import sqlalchemy as sa

    from llmloop.store import open_database
    from llmloop.workspace import get_workspace

    os.environ["LLMLOOP_HOME"] = str(home)
    if url:
        name = f"llmloop_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        os.environ["LLMLOOP_DATABASE_URL"] = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    else:
        os.environ.pop("LLMLOOP_DATABASE_URL", None)
    return open_database(get_workspace(home))


def _seed(db, answers: int) -> tuple[list[str], str]:  # noqa: ANN001
    from llmloop.store.ingest import BattleOp, CompletionOp, ingest_now

    rids = [f"chatcmpl-{i}" for i in range(answers)]
    ingest_now(db, [[CompletionOp(r, "seed", "v1.0", MSG, "answer") for r in rids],
                    [BattleOp("battle-0", "seed", MSG, (("ra", "v1.0", "x"), ("rb", "v1.1", "y")))]])
    return rids, "battle-0"


def _run(label: str, submit, events: int, producers: int) -> dict:  # noqa: ANN001
    """``submit(i)`` is a coroutine function: event i, awaited until acknowledged."""
    latencies: list[float] = []
    acked: list[tuple[str, int]] = []
    counter = iter(range(events))

    async def producer() -> None:
        for i in counter:
            t0 = time.perf_counter()
            acked.append(await submit(i))
            latencies.append(time.perf_counter() - t0)

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        return time.perf_counter() - started

    return _summary(label, asyncio.run(main()), latencies, acked)


def _summary(label: str, seconds: float, latencies: list[float], acked: list) -> dict:
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"label": label, "events": len(latencies), "per_s": len(latencies) / seconds,
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "acked": acked}


def _run_at_rate(label: str, submit, events: int, rate: float) -> dict:  # noqa: ANN001
    """Open loop: event i is submitted at ``start + i / rate`` whether or not earlier ones were
    acknowledged (users do not wait for each other); latency counts from that scheduled time, so a
    writer that falls behind shows it (no coordinated omission)."""
    latencies: list[float] = []
    acked: list[tuple[str, int]] = []

    async def one(i: int, due: float) -> None:
        acked.append(await submit(10_000_000 + i))  # other user ids than the closed-loop run's (one vote each)
        latencies.append(time.perf_counter() - due)

    async def main() -> float:
        start = time.perf_counter()
        tasks = []
        for i in range(events):
            due = start + i / rate
            if due - time.perf_counter() > 0.0005:
                await asyncio.sleep(due - time.perf_counter())
            tasks.append(asyncio.ensure_future(one(i, due)))
        await asyncio.gather(*tasks)
        return time.perf_counter() - start

    return _summary(label, asyncio.run(main()), latencies, acked)


def bench(url: str | None, events: int, producers: int, baseline_events: int, rate: float = 0) -> None:
    from llmloop.store import feedback
    from llmloop.store.ingest import (
        GroupCommitWriter,
        ThumbOp,
        UnitRejected,
        VoteOp,
        ingest_now,
    )

    with tempfile.TemporaryDirectory() as tmp:
        db = _db(url, Path(tmp))
        backend = "PostgreSQL" if url else "SQLite (WAL, synchronous=FULL)"
        rids, battle = _seed(db, 1000)
        gc.collect()
        gc.freeze()  # as `llmloop serve` does once started (llmloop/app.py): no full collections of the startup heap

        store_lane = ThreadPoolExecutor(16)

        def per_event_blocking(i: int) -> tuple[str, int]:
            kind, ops = op(i, "base")
            (result,) = ingest_now(db, [ops])  # its own transaction
            if isinstance(result, UnitRejected):
                raise result
            return kind, result[0].id

        async def per_event(i: int) -> tuple[str, int]:
            return await asyncio.get_running_loop().run_in_executor(store_lane, per_event_blocking, i)

        writer = GroupCommitWriter(db)

        def op(i: int, tag: str) -> tuple[str, list]:
            if i % 2:
                return "vote", [VoteOp(battle, f"{tag}-{i}", "a")]
            return "thumb", [ThumbOp(rids[i % len(rids)], f"{tag}-{i}", 1)]

        async def grouped_wrap(i: int) -> tuple[str, int]:  # one loop wake-up per acknowledgement
            kind, ops = op(i, "wrap")
            return kind, (await asyncio.wrap_future(writer.submit(ops)))[0].id

        async def grouped(i: int) -> tuple[str, int]:  # one loop wake-up per commit
            kind, ops = op(i, "group")
            return kind, (await writer.submit_async(ops))[0].id

        async_label = "group commit, submit_async"
        if not hasattr(writer, "submit_async"):  # an older llmloop (old-vs-new runs): wrap_future twice
            async_label = "group commit, wrap_future²"

            async def grouped(i: int) -> tuple[str, int]:
                kind, ops = op(i, "group")
                return kind, (await asyncio.wrap_future(writer.submit(ops)))[0].id

        base = _run("one transaction per event", per_event, baseline_events, producers)
        wrap = _run("group commit, wrap_future", grouped_wrap, events, producers)
        group = _run(async_label, grouped, events, producers)
        group["acked"] += wrap["acked"]
        offered = []
        if rate:
            offered = [_run_at_rate("one transaction per event", per_event, baseline_events, rate),
                       _run_at_rate("group commit, wrap_future", grouped_wrap, events, rate),
                       _run_at_rate(async_label, grouped, events, rate)]
            group["acked"] += offered[1]["acked"] + offered[2]["acked"]
        writer.close()
        store_lane.shutdown()
        stored_votes = {v.vote_id for v in feedback.voted_battles(db)}
        stored_thumbs = {t.id for t in feedback.list_thumbs(db)}
        lost = [x for x in group["acked"] if x[1] not in (stored_votes if x[0] == "vote" else stored_thumbs)]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\n{backend}: {producers} producers, each waits for its acknowledgement; "
              f"load average {load} on {os.cpu_count()} CPUs")
        print(f"{'':28} {'events':>7} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for r in (base, wrap, group):
            print(f"{r['label']:28} {r['events']:>7} {r['per_s']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
        print(f"ratio (group / per-event): throughput ×{group['per_s'] / base['per_s']:.1f}, "
              f"p99 ×{group['p99_ms'] / base['p99_ms']:.2f}")
        if offered:
            print(f"\nevents offered at {rate:.0f}/s (open loop; latency from each event's scheduled time)")
            for r in offered:
                print(f"{r['label']:28} {r['events']:>7} {r['per_s']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
            print("goal: >= 10,000 events/s with p99 <= 10 ms (SQLite)")
        print(f"commits {writer.stats['commits']} for {writer.stats['units']} events in all; acknowledged but "
              f"missing: {len(lost)}")
        db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="events through the group-commit writer")
    ap.add_argument("--baseline-events", type=int, default=4_000, help="events through the per-event baseline")
    ap.add_argument("--producers", type=int, default=128, help="concurrent producers (coroutines)")
    ap.add_argument("--rate", type=float, default=10_000,
                    help="also offer events at this rate (open loop) and report latency there; 0: skip")
    ap.add_argument("--postgres", default=None, help="also run on PostgreSQL at this server URL")
    args = ap.parse_args()
    bench(None, args.events, args.producers, args.baseline_events, args.rate)
    if args.postgres:
        bench(args.postgres, args.events, args.producers, args.baseline_events, args.rate)


if __name__ == "__main__":
    main()
