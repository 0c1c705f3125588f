"""Model versions (v1.0, v1.1, …) with lineage, and aliases (`production`, `candidate`, …).

Moving an alias is one transaction that also writes an audit row, so readers never see an alias
pointing at nothing and every move can be explained afterwards. A version made by surgery (merge,
average, quantize, prune, distill) is inserted together with its lineage row (every parent and the
recipe) in the same transaction: there is never a surgery version without its recipe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from llmloop.errors import LlmloopError, NotFound, UserError
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.records import ModelVersion
from llmloop.store.tables import alias_events, aliases, model_exports, model_versions, version_lineage

STAGES = ("candidate", "canary", "production", "archived")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,59}$")


@dataclass(frozen=True)
class Lineage:
    """How a surgery version was made: the operation, every parent, the recipe, what was measured."""

    version: str
    operation: str
    parents: list[str]
    recipe: dict[str, Any]
    report: dict[str, Any]


class VersionNotFound(NotFound, LookupError):
    pass


class RegistryError(UserError, ValueError):
    """A registry change the store refuses: a name taken, a bad alias name, an alias still pointing."""


def _record(row: sa.Row, names: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        kind=row.kind,
        base_model=row.base_model,
        adapter_path=row.adapter_path,
        parent=row.parent,
        job_id=row.job_id,
        dataset_versions=list(row.dataset_versions or []),
        metrics=dict(row.metrics or {}),
        stage=row.stage,
        note=row.note,
        created_at=as_utc(row.created_at),
        aliases=names,
    )


def _aliases_of(conn: sa.Connection) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for r in conn.execute(sa.select(aliases).order_by(aliases.c.name)):
        out.setdefault(r.version, []).append(r.name)
    return {k: tuple(v) for k, v in out.items()}


def next_version_name(db: Database, parent: str | None, *, prefix: str = "v") -> str:
    """``{prefix}1.0`` for a new line of models; parent X.Y → the next free X.(Y+1).

    Chat models use the prefix ``v`` (v1.0, v1.1 …), completion models ``c`` (c1.0 …).
    """
    with db.begin() as conn:
        taken = set(conn.execute(sa.select(model_versions.c.name)).scalars())
    if parent is None or not parent.startswith(prefix):
        major = 1
        while f"{prefix}{major}.0" in taken:
            major += 1
        return f"{prefix}{major}.0"
    major, minor = parent[len(prefix):].split(".")[:2]
    m = int(minor) + 1
    while f"{prefix}{major}.{m}" in taken:
        m += 1
    return f"{prefix}{major}.{m}"


def register(
    db: Database,
    *,
    name: str,
    kind: str,
    base_model: str,
    adapter_path: str | None = None,
    parent: str | None = None,
    job_id: str | None = None,
    dataset_versions: list[int] | None = None,
    metrics: dict[str, Any] | None = None,
    stage: str = "candidate",
    note: str = "",
    lineage: Lineage | None = None,
) -> ModelVersion:
    """Insert an immutable version; with ``lineage`` its surgery recipe goes in the same transaction."""
    if kind not in ("completion", "chat"):
        raise RegistryError(f"model kind must be 'completion' or 'chat', got {kind!r}")
    if stage not in STAGES:
        raise RegistryError(f"stage must be one of {STAGES}, got {stage!r}")
    with db.begin() as conn:
        exists = conn.execute(
            sa.select(model_versions.c.id).where(model_versions.c.name == name)
        ).first()
        if exists:
            raise RegistryError(f"model version {name!r} exists already; versions are immutable")
        conn.execute(
            model_versions.insert().values(
                name=name,
                kind=kind,
                base_model=base_model,
                adapter_path=adapter_path,
                parent=parent,
                job_id=job_id,
                dataset_versions=dataset_versions or [],
                metrics=metrics or {},
                stage=stage,
                note=note,
                created_at=utcnow(),
            )
        )
        if lineage is not None:
            if lineage.version != name:
                raise RegistryError(f"lineage is for {lineage.version!r}, not {name!r}")
            conn.execute(
                version_lineage.insert().values(
                    version=name, operation=lineage.operation, parents=list(lineage.parents),
                    recipe=lineage.recipe, report=lineage.report, created_at=utcnow(),
                )
            )
    return get(db, name)


def get(db: Database, name_or_alias: str) -> ModelVersion:
    """A version by name (``v1.1``) or alias (``production``)."""
    with db.begin() as conn:
        target = conn.execute(
            sa.select(aliases.c.version).where(aliases.c.name == name_or_alias)
        ).scalar()
        name = target or name_or_alias
        row = conn.execute(sa.select(model_versions).where(model_versions.c.name == name)).first()
        if row is None:
            raise VersionNotFound(
                f"no model version or alias {name_or_alias!r}; see `llmloop models list`"
            )
        return _record(row, _aliases_of(conn).get(row.name, ()))


def list_versions(db: Database) -> list[ModelVersion]:
    with db.begin() as conn:
        names = _aliases_of(conn)
        rows = conn.execute(sa.select(model_versions).order_by(model_versions.c.id))
        return [_record(r, names.get(r.name, ())) for r in rows]


class _AliasRace(LlmloopError):
    """The alias row appeared between our lock attempt and our read: start the move again."""


def _lock_alias(conn: sa.Connection, alias: str) -> bool:
    """Take the write lock before reading: a no-op UPDATE of the alias row. On PostgreSQL it locks
    that row until commit; on SQLite the first write takes the database's write lock (waiting on
    busy_timeout), so no other writer can slip between our read of the old target and our write.
    Returns whether a row was locked (False: the alias did not exist when we looked)."""
    res = conn.execute(aliases.update().where(aliases.c.name == alias).values(updated_at=aliases.c.updated_at))
    return res.rowcount == 1


def _read_locked(conn: sa.Connection, alias: str, locked: bool) -> str | None:
    old = conn.execute(sa.select(aliases.c.version).where(aliases.c.name == alias)).scalar()
    if old is not None and not locked:
        raise _AliasRace(alias)  # created by a concurrent first move after our UPDATE found nothing
    return old


def set_alias(db: Database, alias: str, version: str, *, reason: str = "") -> None:
    """Point ``alias`` at ``version`` atomically, with an audit row. ``production`` also moves stages.

    Concurrent moves of one alias serialise: each audit row's ``old_version`` is the previous row's
    ``new_version``. Two first-ever moves of a new alias race on its insert; the loser retries."""
    if not _ALIAS.match(alias):
        raise RegistryError(
            f"alias {alias!r} is not a valid name: start with a letter, then letters, digits, '_', '.', '-' (≤60)"
        )
    for attempt in range(10):
        try:
            _move_alias(db, alias, version, reason)
            return
        except (sa.exc.IntegrityError, _AliasRace):
            if attempt == 9:
                raise


def _move_alias(db: Database, alias: str, version: str, reason: str) -> None:
    now = utcnow()
    with db.begin() as conn:
        locked = _lock_alias(conn, alias)
        if conn.execute(
            sa.select(model_versions.c.id).where(model_versions.c.name == alias)
        ).first() is not None:
            raise RegistryError(f"alias {alias!r} is the name of a model version; pick another alias name")
        if conn.execute(
            sa.select(model_versions.c.id).where(model_versions.c.name == version)
        ).first() is None:
            raise VersionNotFound(f"no model version {version!r}; see `llmloop models list`")
        old = _read_locked(conn, alias, locked)
        if old is None:  # a concurrent first move makes this insert fail (unique name): retried
            conn.execute(aliases.insert().values(name=alias, version=version, updated_at=now))
        else:
            conn.execute(
                aliases.update().where(aliases.c.name == alias).values(version=version, updated_at=now)
            )
        conn.execute(
            alias_events.insert().values(
                alias=alias, old_version=old, new_version=version, reason=reason, created_at=now
            )
        )
        if alias == "production":
            if old and old != version:
                conn.execute(
                    model_versions.update()
                    .where(model_versions.c.name == old)
                    .values(stage="archived")
                )
            conn.execute(
                model_versions.update()
                .where(model_versions.c.name == version)
                .values(stage="production")
            )


def remove_alias(db: Database, alias: str, *, reason: str = "") -> None:
    """Drop an alias (audited: the event's new_version is empty). Unknown aliases are a no-op."""
    with db.begin() as conn:
        if not _lock_alias(conn, alias):
            return  # nothing to remove (a move racing with this removal wins; both are audited)
        old = conn.execute(sa.select(aliases.c.version).where(aliases.c.name == alias)).scalar()
        conn.execute(aliases.delete().where(aliases.c.name == alias))
        conn.execute(
            alias_events.insert().values(
                alias=alias, old_version=old, new_version="", reason=reason or "removed", created_at=utcnow()
            )
        )


def archive(db: Database, name: str, *, reason: str = "") -> ModelVersion:
    """Stage → archived. Refused while an alias points at the version (move the alias first)."""
    with db.begin() as conn:
        if conn.execute(sa.select(model_versions.c.id).where(model_versions.c.name == name)).first() is None:
            raise VersionNotFound(f"no model version {name!r}; see `llmloop models list`")
        held = list(conn.execute(sa.select(aliases.c.name).where(aliases.c.version == name)).scalars())
        if held:
            raise RegistryError(
                f"{name} is still the target of alias(es) {', '.join(sorted(held))}; point them elsewhere "
                f"(`llmloop models alias NAME VERSION`) or remove them before archiving"
            )
        conn.execute(model_versions.update().where(model_versions.c.name == name).values(stage="archived"))
        conn.execute(
            alias_events.insert().values(
                alias="(stage)", old_version=name, new_version="archived",
                reason=reason or "archived", created_at=utcnow(),
            )
        )
    return get(db, name)


def get_lineage(db: Database, name: str) -> Lineage | None:
    """The surgery record of ``name``; None for versions made by training or registered by hand."""
    with db.begin() as conn:
        row = conn.execute(sa.select(version_lineage).where(version_lineage.c.version == name)).first()
    if row is None:
        return None
    return Lineage(row.version, row.operation, list(row.parents), dict(row.recipe), dict(row.report))


def record_export(db: Database, version: str, fmt: str, path: str, report: dict[str, Any]) -> int:
    """An artifact for another runtime (e.g. GGUF); not a servable version. Returns its id."""
    with db.begin() as conn:
        res = conn.execute(
            model_exports.insert().values(version=version, format=fmt, path=path, report=report, created_at=utcnow())
        )
        return int(res.inserted_primary_key[0])


def list_exports(db: Database, version: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(model_exports).order_by(model_exports.c.id)
    q = q if version is None else q.where(model_exports.c.version == version)
    with db.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def resolve_alias(db: Database, alias: str) -> str | None:
    with db.begin() as conn:
        return conn.execute(sa.select(aliases.c.version).where(aliases.c.name == alias)).scalar()


def alias_history(db: Database, alias: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(alias_events).order_by(alias_events.c.id)
    q = q if alias is None else q.where(alias_events.c.alias == alias)
    with db.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def update_metrics(db: Database, name: str, metrics: dict[str, Any]) -> None:
    with db.begin() as conn:
        row = conn.execute(
            sa.select(model_versions.c.metrics).where(model_versions.c.name == name)
        ).first()
        if row is None:
            raise VersionNotFound(f"no model version {name!r}")
        merged = {**(row.metrics or {}), **metrics}
        conn.execute(
            model_versions.update().where(model_versions.c.name == name).values(metrics=merged)
        )
