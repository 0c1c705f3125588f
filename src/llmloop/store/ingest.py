"""Group commit for everything the gateway writes per request: answers, battles, votes, thumbs,
edit/regenerate events.

Many request threads ``submit`` units; one writer thread takes everything queued, validates it with
one query per table (not one per event), inserts it with one multi-row statement per table and
commits once. Each unit's future resolves only after that commit returned — so an acknowledgement
never precedes durability — and a commit costs one fsync however many events it carries, which is
what lifts SQLite (``synchronous=FULL``) from ~2,000 to well over 10,000 durable events/s.

A *unit* is all-or-nothing: the batch feedback endpoint submits its events as one unit; a bad event
fails the unit (with every error and its index) and nothing of it is stored, while the other units
of the same group commit normally. Only a database error (or a race with another process, as a
unique-key violation) fails a whole group; the writer then retries each unit in its own transaction,
so one bad unit never takes its neighbours down.

On SQLite the writer uses the connection's own DB-API cursor (prepared ``executemany``, orjson for
JSON columns) in the transaction SQLAlchemy commits; coroutines await ``submit_async``, whose futures
are resolved with one event-loop wake-up per commit (``asyncio.wrap_future`` costs one per unit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from llmloop.errors import UserError
from llmloop.store.db import Database, utcnow
from llmloop.store.feedback import EVENT_KINDS, VOTE_CHOICES
from llmloop.store.tables import battles, completions, feedback_events, thumbs, votes

log = logging.getLogger("llmloop.store.ingest")
_IN_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit


# -- what can be written ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CompletionOp:
    request_id: str
    user_id: str
    version: str
    messages: list[dict[str, Any]]
    output: str
    battle_id: str | None = None


@dataclass(frozen=True)
class BattleOp:
    battle_id: str
    user_id: str
    messages: list[dict[str, Any]]
    answers: tuple[tuple[str, str, str], tuple[str, str, str]]  # (request_id, version, output) × 2


@dataclass(frozen=True)
class BattleTurnOp:
    """A later turn of an arena battle: each side answered the user's follow-up with its own history.
    Both answers become completions of the battle, and the battle now points at them (its votes judge
    the whole conversation). ``previous`` is the pair of request ids the turn continued: when another
    turn got in first, or a vote ended the battle, the turn is refused."""

    battle_id: str
    user_id: str
    previous: tuple[str, str]
    answers: tuple[tuple[str, str, list[dict[str, Any]], str], tuple[str, str, list[dict[str, Any]], str]]
    # (request_id, version, that side's messages, output) × 2
    owner: str | None = None


@dataclass(frozen=True)
class VoteOp:
    battle_id: str
    user_id: str
    choice: str
    owner: str | None = None  # when set, the battle must have been served to this user


@dataclass(frozen=True)
class ThumbOp:
    request_id: str
    user_id: str
    rating: int
    comment: str = ""
    correction: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class EventOp:
    kind: str  # edit | regenerate
    request_id: str
    user_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None


Op = CompletionOp | BattleOp | BattleTurnOp | VoteOp | ThumbOp | EventOp


@dataclass(frozen=True)
class OpResult:
    """What a stored op became: its row id (votes, thumbs, events) and the version it is about."""

    id: int | None
    version: str | None = None
    versions: tuple[str, str] | None = None  # a vote: (version_a, version_b)


@dataclass(frozen=True)
class OpError:
    index: int
    code: str  # not_found | forbidden | duplicate | invalid
    message: str


class UnitRejected(UserError, ValueError):
    """A unit failed validation; nothing of it was stored."""

    def __init__(self, errors: list[OpError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"event {e.index}: {e.message}" for e in errors))


# -- the vectorised write ----------------------------------------------------------------------------
def _chunks(keys: list[str]) -> list[list[str]]:
    return [keys[i:i + _IN_CHUNK] for i in range(0, len(keys), _IN_CHUNK)]


def _fetch(conn: sa.Connection, column: sa.Column, keys: set[str], *cols: sa.Column,
           where: sa.ColumnElement | None = None) -> list[sa.Row]:
    rows: list[sa.Row] = []
    for chunk in _chunks(sorted(keys)):
        q = sa.select(*cols).where(column.in_(chunk))
        rows += conn.execute(q if where is None else q.where(where)).all()
    return rows


def _sqlite_select(cur: Any, sql: str, keys: set[str], extra: list[str] | None = None) -> list[tuple]:
    """``sql`` with one ``{}`` for an ``IN (?, …)`` of ``keys`` (chunked), run on the raw cursor."""
    rows: list[tuple] = []
    for chunk in _chunks(list(keys)):
        rows += cur.execute(sql.format(",".join("?" * len(chunk))), chunk + (extra or [])).fetchall()
    return rows


def _lookups(conn: sa.Connection, cur: Any, rids: set[str], bids: set[str], voters: set[str]
             ) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str, str, str, str]], set[tuple[str, str]]]:
    """One query per referenced table for the whole group: answers, battles, and the (battle, user)
    pairs that already voted (only the pairs this group could repeat)."""
    if cur is not None:  # SQLite: the raw DB-API cursor, no statement compilation or Row objects
        answers = {r[0]: (r[1], r[2]) for r in _sqlite_select(
            cur, "SELECT request_id, version, user_id FROM completions WHERE request_id IN ({})", rids)}
        fights = {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in _sqlite_select(
            cur, "SELECT id, version_a, version_b, user_id, request_id_a, request_id_b FROM battles WHERE id IN ({})",
            bids)}
        voted: set[tuple[str, str]] = set()
        if fights:
            for chunk in _chunks(list(voters)):
                marks = ",".join("?" * len(chunk))
                voted |= set(_sqlite_select(
                    cur, "SELECT battle_id, user_id FROM votes WHERE battle_id IN ({}) AND user_id IN (%s)" % marks,
                    set(fights), chunk))
        return answers, fights, voted
    answers = {r.request_id: (r.version, r.user_id) for r in _fetch(
        conn, completions.c.request_id, rids, completions.c.request_id, completions.c.version, completions.c.user_id)}
    fights = {r.id: (r.version_a, r.version_b, r.user_id, r.request_id_a, r.request_id_b) for r in _fetch(
        conn, battles.c.id, bids, battles.c.id, battles.c.version_a, battles.c.version_b, battles.c.user_id,
        battles.c.request_id_a, battles.c.request_id_b)}
    voted = set()
    if bids:
        for chunk in _chunks(sorted(voters)):
            voted |= {(r.battle_id, r.user_id) for r in _fetch(
                conn, votes.c.battle_id, bids, votes.c.battle_id, votes.c.user_id, where=votes.c.user_id.in_(chunk))}
    return answers, fights, voted


def ingest(conn: sa.Connection, units: list[list[Op]]) -> list[list[OpResult] | UnitRejected]:
    """Validate and insert ``units`` inside the caller's transaction; one result per unit.

    SQLite runs on the connection's own DB-API cursor (prepared ``executemany`` with tuples, JSON
    encoded by orjson) inside the same transaction SQLAlchemy commits; PostgreSQL on SQLAlchemy Core
    (``INSERT … RETURNING`` in ordered multi-row batches)."""
    cur = conn.connection.cursor() if conn.dialect.name == "sqlite" else None
    rids = {op.request_id for u in units for op in u if isinstance(op, (ThumbOp, EventOp))}
    bids = {op.battle_id for u in units for op in u if isinstance(op, (VoteOp, BattleTurnOp))}
    voters = {op.user_id for u in units for op in u if isinstance(op, (VoteOp, BattleTurnOp))}
    answers, fights, voted = _lookups(conn, cur, rids, bids, voters)

    now = utcnow()
    rows: dict[str, list[tuple]] = {"completions": [], "battles": [], "votes": [], "thumbs": [], "events": []}
    turns: list[tuple[str, str, str, str, str]] = []  # (new a, new b, battle, previous a, previous b)
    slots: dict[str, list[tuple[int, int]]] = {"votes": [], "thumbs": [], "events": []}  # (unit, op) per row
    results: list[list[OpResult] | UnitRejected] = []
    for ui, unit in enumerate(units):
        errors: list[OpError] = []
        staged_answers: dict[str, tuple[str, str]] = {}
        staged_fights: dict[str, tuple[str, str, str, str, str]] = {}
        staged_turns: list[tuple[str, str, str, str, str]] = []
        staged_votes: set[tuple[str, str]] = set()
        out: list[OpResult] = []
        staged: list[tuple[str, tuple, int | None]] = []  # (table, row, op index for an id)

        def answer(rid: str) -> tuple[str, str] | None:
            return staged_answers.get(rid) or answers.get(rid)

        for oi, op in enumerate(unit):
            if isinstance(op, CompletionOp):
                staged.append(("completions", (op.request_id, op.user_id, op.version, op.messages, op.output,
                                                 op.battle_id, now), None))
                staged_answers[op.request_id] = (op.version, op.user_id)
                out.append(OpResult(None, op.version))
            elif isinstance(op, BattleOp):
                for rid, ver, text in op.answers:
                    staged.append(("completions", (rid, op.user_id, ver, op.messages, text, op.battle_id, now), None))
                    staged_answers[rid] = (ver, op.user_id)
                (ra, va, _), (rb, vb, _) = op.answers
                staged.append(("battles", (op.battle_id, op.user_id, op.messages, ra, rb, va, vb, now), None))
                staged_fights[op.battle_id] = (va, vb, op.user_id, ra, rb)
                out.append(OpResult(None, versions=(va, vb)))
            elif isinstance(op, BattleTurnOp):
                fight = staged_fights.get(op.battle_id) or fights.get(op.battle_id)
                (ra, va, ma, ta), (rb, vb, mb, tb) = op.answers
                if fight is None:
                    errors.append(OpError(oi, "not_found", f"no arena battle {op.battle_id!r}"))
                elif op.owner is not None and fight[2] != op.owner:
                    errors.append(OpError(oi, "forbidden", f"battle {op.battle_id!r} was not served to you"))
                elif (op.battle_id, op.user_id) in voted or (op.battle_id, op.user_id) in staged_votes:
                    errors.append(OpError(oi, "duplicate", f"battle {op.battle_id!r} was voted on: a vote ends a "
                                                           "battle; start a new one"))
                elif (va, vb) != fight[:2]:
                    errors.append(OpError(oi, "invalid", f"battle {op.battle_id!r} is {fight[0]} vs {fight[1]}, "
                                                         f"not {va} vs {vb}"))
                elif tuple(op.previous) != fight[3:]:
                    errors.append(OpError(oi, "duplicate", f"battle {op.battle_id!r} went on meanwhile (another "
                                                           "follow-up came first); send yours again"))
                else:
                    for rid, ver, msgs, text in op.answers:
                        staged.append(("completions", (rid, op.user_id, ver, msgs, text, op.battle_id, now), None))
                        staged_answers[rid] = (ver, op.user_id)
                    staged_fights[op.battle_id] = (va, vb, fight[2], ra, rb)
                    staged_turns.append((ra, rb, op.battle_id, *op.previous))
                    out.append(OpResult(None, versions=(va, vb)))
            elif isinstance(op, VoteOp):
                fight = staged_fights.get(op.battle_id) or fights.get(op.battle_id)
                if op.choice not in VOTE_CHOICES:
                    errors.append(OpError(oi, "invalid", f"choice must be one of {VOTE_CHOICES}, got {op.choice!r}"))
                elif fight is None:
                    errors.append(OpError(oi, "not_found", f"no arena battle {op.battle_id!r}"))
                elif op.owner is not None and fight[2] != op.owner:
                    errors.append(OpError(oi, "forbidden", f"battle {op.battle_id!r} was not served to you"))
                elif (op.battle_id, op.user_id) in voted or (op.battle_id, op.user_id) in staged_votes:
                    errors.append(OpError(oi, "duplicate", f"user {op.user_id!r} already voted on battle {op.battle_id!r}"))
                else:
                    staged_votes.add((op.battle_id, op.user_id))
                    staged.append(("votes", (op.battle_id, op.user_id, op.choice, now), oi))
                    out.append(OpResult(None, versions=(fight[0], fight[1])))
            elif isinstance(op, (ThumbOp, EventOp)):
                found = answer(op.request_id)
                if isinstance(op, ThumbOp) and op.rating not in (1, -1):
                    errors.append(OpError(oi, "invalid", f"rating must be 1 or -1, got {op.rating!r}"))
                elif isinstance(op, EventOp) and op.kind not in EVENT_KINDS:
                    errors.append(OpError(oi, "invalid", f"event kind must be one of {EVENT_KINDS}, got {op.kind!r}"))
                elif found is None:
                    errors.append(OpError(oi, "not_found", f"no answer with request id {op.request_id!r}"))
                elif op.owner is not None and found[1] != op.owner:
                    errors.append(OpError(oi, "forbidden", f"answer {op.request_id!r} was not served to you"))
                elif isinstance(op, ThumbOp):
                    staged.append(("thumbs", (op.request_id, op.user_id, op.rating, op.comment, op.correction, now), oi))
                    out.append(OpResult(None, found[0]))
                else:
                    staged.append(("events", (op.kind, op.request_id, found[0], op.user_id, op.payload, now), oi))
                    out.append(OpResult(None, found[0]))
            else:  # pragma: no cover - a programming error
                raise TypeError(f"cannot ingest {op!r}")
        if errors:
            results.append(UnitRejected(errors))
            continue
        # accepted: later units see what this one adds
        answers.update(staged_answers)
        fights.update(staged_fights)
        voted.update(staged_votes)
        turns.extend(staged_turns)
        for key, row, oi in staged:
            rows[key].append(row)
            if oi is not None:
                slots[key].append((ui, oi))
        results.append(out)

    if cur is not None:
        _write_sqlite(conn, cur, rows, now)
        ids = {key: _sqlite_new_ids(cur, _TABLES[key].name, len(rows[key])) for key in slots if rows[key]}
        if turns:
            cur.executemany(_TURN_SQL, turns)
    else:
        for key in ("completions", "battles"):
            if rows[key]:
                conn.execute(_TABLES[key].insert(), [dict(zip(_COLUMNS[key], r)) for r in rows[key]])
        ids = {key: _insert_returning_ids(conn, _TABLES[key], [dict(zip(_COLUMNS[key], r)) for r in rows[key]])
               for key in slots if rows[key]}
        for ra, rb, bid, pa, pb in turns:
            conn.execute(battles.update().where(battles.c.id == bid, battles.c.request_id_a == pa,
                                                battles.c.request_id_b == pb).values(request_id_a=ra, request_id_b=rb))
    for key, new_ids in ids.items():
        for (ui, oi), new_id in zip(slots[key], new_ids, strict=True):
            unit = results[ui]
            assert isinstance(unit, list)
            unit[oi] = OpResult(int(new_id), unit[oi].version, unit[oi].versions)
    return results


# column order of the staged row tuples, per table
_TABLES = {"completions": completions, "battles": battles, "votes": votes, "thumbs": thumbs, "events": feedback_events}
_COLUMNS = {
    "completions": ("request_id", "user_id", "version", "messages", "output", "battle_id", "created_at"),
    "battles": ("id", "user_id", "messages", "request_id_a", "request_id_b", "version_a", "version_b", "created_at"),
    "votes": ("battle_id", "user_id", "choice", "created_at"),
    "thumbs": ("request_id", "user_id", "rating", "comment", "correction", "created_at"),
    "events": ("kind", "request_id", "version", "user_id", "payload", "created_at"),
}
# a battle's next turn: the battle points at its newest answers (only if no other turn moved it first)
_TURN_SQL = "UPDATE battles SET request_id_a = ?, request_id_b = ? WHERE id = ? AND request_id_a = ? AND request_id_b = ?"
_JSON = {key: tuple(i for i, c in enumerate(cols) if isinstance(_TABLES[key].c[c].type, sa.JSON))
         for key, cols in _COLUMNS.items()}
_INSERT_SQL = {key: f"INSERT INTO {_TABLES[key].name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
               for key, cols in _COLUMNS.items()}


def _json(value: Any) -> str:
    """What SQLAlchemy's JSON type would store (read back by ``json.loads`` alike), via orjson."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson refuses and json takes (an int past 64 bits, a non-str key)
        return json.dumps(value)


def _write_sqlite(conn: sa.Connection, cur: Any, rows: dict[str, list[tuple]], now: Any) -> None:
    """One prepared ``executemany`` per table on the raw cursor; timestamps as SQLAlchemy stores them."""
    stamp = completions.c.created_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    now_s = stamp(now) if stamp else now
    for key in ("completions", "battles", "votes", "thumbs", "events"):
        if not rows[key]:
            continue
        encoded: dict[int, str] = {}  # a battle's messages are shared by its rows: encode once
        js = _JSON[key]

        def params(r: tuple) -> tuple:
            out = list(r)
            out[-1] = now_s
            for i in js:
                out[i] = encoded.get(id(r[i])) or encoded.setdefault(id(r[i]), _json(r[i]))
            return tuple(out)

        cur.executemany(_INSERT_SQL[key], [params(r) for r in rows[key]])


def _sqlite_new_ids(cur: Any, table: str, n: int) -> list[int]:
    """The ids of the ``n`` rows just inserted by one ``executemany``: SQLite has one writer at a time
    and this transaction holds the write lock since its first insert, and a rowid primary key (no
    AUTOINCREMENT) is assigned max + 1 per row in parameter order, so they are the newest ``n``."""
    (last,) = cur.execute(f"SELECT max(id) FROM {table}").fetchone()
    return list(range(last - n + 1, last + 1))


def _insert_returning_ids(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    """PostgreSQL: insert ``rows`` with ``INSERT … RETURNING`` in SQLAlchemy's ordered multi-row
    batches; their new ids in the same order."""
    return list(conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows).scalars())


def ingest_now(db: Database, units: list[list[Op]]) -> list[list[OpResult] | UnitRejected]:
    """``ingest`` in one transaction of its own (no writer thread)."""
    with db.begin() as conn:
        return ingest(conn, units)


# -- the writer thread ---------------------------------------------------------------------------
@dataclass
class _Pending:
    ops: list[Op]
    future: Future | asyncio.Future = field(default_factory=Future)
    loop: asyncio.AbstractEventLoop | None = None  # set for ``submit_async``: resolve on this loop


class GroupCommitWriter:
    """One thread that commits whatever is queued as one transaction (group commit)."""

    def __init__(self, db: Database, *, max_events: int = 4096) -> None:
        self.db = db
        self.max_events = max_events
        self._queue: deque[_Pending] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.stats = {"units": 0, "commits": 0}
        self._thread = threading.Thread(target=self._run, name="llmloop-feedback-writer", daemon=True)
        self._thread.start()

    def submit(self, ops: Iterable[Op]) -> Future:
        """A future resolved (after commit) to the unit's ``OpResult`` list, or failed with
        ``UnitRejected`` / the database error."""
        pending = _Pending(list(ops))
        self._enqueue(pending)
        return pending.future

    def _enqueue(self, pending: _Pending) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the feedback writer is closed")
            self._queue.append(pending)
            self._cv.notify()

    def submit_async(self, ops: Iterable[Op]) -> asyncio.Future:
        """``submit`` for a coroutine on the running event loop: an asyncio future, resolved (after
        commit) together with every other unit of that loop in the same group — one
        ``call_soon_threadsafe`` wake-up per commit instead of one per unit (``asyncio.wrap_future``),
        which at 10,000 events/s is most of the event loop's share of the acknowledgement cost."""
        loop = asyncio.get_running_loop()
        pending = _Pending(list(ops), loop.create_future(), loop)
        self._enqueue(pending)
        return pending.future

    def write(self, ops: Iterable[Op], timeout: float | None = 60) -> list[OpResult]:
        """Blocking ``submit``: the results once durable."""
        return self.submit(ops).result(timeout)

    def close(self, timeout: float = 30) -> None:
        """Commit what is queued, then stop."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout)

    def _take(self) -> list[_Pending] | None:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if not self._queue:
                return None
            group, n = [], 0
            while self._queue and (not group or n + len(self._queue[0].ops) <= self.max_events):
                item = self._queue.popleft()
                group.append(item)
                n += len(item.ops)
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            try:
                self._commit(group)
            except BaseException:  # noqa: BLE001 - never let the writer die; report per unit
                for item in group:
                    self._commit_alone(item)

    def _commit(self, group: list[_Pending]) -> None:
        with self.db.begin() as conn:
            results = ingest(conn, [item.ops for item in group])
        self.stats["commits"] += 1
        self.stats["units"] += len(group)
        _resolve_all(list(zip(group, results, strict=True)))

    def _commit_alone(self, item: _Pending) -> None:
        try:
            with self.db.begin() as conn:
                (result,) = ingest(conn, [item.ops])
        except sa.exc.IntegrityError as e:  # a race with another process (same vote twice)
            _resolve_all([(item, UnitRejected([OpError(0, "duplicate", f"conflicts with a stored row: {e.orig}")]))])
        except BaseException as e:  # noqa: BLE001
            log.exception("feedback write failed")
            _resolve_all([(item, e)])
        else:
            self.stats["commits"] += 1
            self.stats["units"] += 1
            _resolve_all([(item, result)])


def _resolve_all(done: list[tuple[_Pending, list[OpResult] | BaseException]]) -> None:
    """Resolve each unit's future: thread futures here, asyncio futures with one hop per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
    for item, result in done:
        if item.loop is None:
            _resolve(item.future, result)
        else:
            by_loop.setdefault(item.loop, []).append((item.future, result))
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_batch, batch)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _resolve_batch(batch: list[tuple[Any, Any]]) -> None:
    for future, result in batch:
        _resolve(future, result)


def _resolve(future: Future | asyncio.Future, result: list[OpResult] | BaseException) -> None:
    if future.done():  # a cancelled waiter (the write itself stands)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
