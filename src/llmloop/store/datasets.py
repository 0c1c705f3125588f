"""Datasets and their immutable versions (v1.0, v1.1, …)."""

from __future__ import annotations

import sqlalchemy as sa

from llmloop.errors import NotFound, UserError
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.records import DatasetVersion
from llmloop.store.tables import dataset_versions, datasets


class DatasetNotFound(NotFound, LookupError):
    pass


class DatasetRefused(UserError, ValueError):
    """A dataset change the store refuses: rows of another kind under a name, a name already taken."""


def _next_version(previous: str | None) -> str:
    if previous is None:
        return "v1.0"
    major, minor = previous.lstrip("v").split(".")
    return f"v{major}.{int(minor) + 1}"


def _record(row: sa.Row) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        dataset=row.name,
        kind=row.kind,
        version=row.version,
        content_hash=row.content_hash,
        parent_id=row.parent_id,
        row_count=row.row_count,
        path=row.path,
        source_format=row.source_format,
        note=row.note,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
    )


_SELECT = sa.select(
    dataset_versions.c.id,
    datasets.c.name,
    datasets.c.kind,
    dataset_versions.c.version,
    dataset_versions.c.content_hash,
    dataset_versions.c.parent_id,
    dataset_versions.c.row_count,
    dataset_versions.c.path,
    dataset_versions.c.source_format,
    dataset_versions.c.note,
    dataset_versions.c.created_by,
    dataset_versions.c.created_at,
).join(datasets, datasets.c.id == dataset_versions.c.dataset_id)


def add_version(
    db: Database,
    *,
    name: str,
    kind: str,
    path: str,
    content_hash: str,
    row_count: int,
    source_format: str,
    note: str = "",
    created_by: str = "",
    parent_id: int | None = None,
) -> DatasetVersion:
    """Register a new immutable version of dataset ``name`` (created on first use).

    The caller has already written the rows to ``path``; the version's parent is ``parent_id`` when
    given (a transform of an older version), else the dataset's latest version. One transaction: either the version exists afterwards or nothing changed.
    """
    now = utcnow()
    with db.begin() as conn:
        ds = conn.execute(sa.select(datasets).where(datasets.c.name == name)).first()
        if ds is None:
            ds_id = conn.execute(
                datasets.insert().values(name=name, kind=kind, description="", created_at=now)
            ).inserted_primary_key[0]
            parent = None
        else:
            if ds.kind != kind:
                raise DatasetRefused(
                    f"dataset {name!r} holds {ds.kind} rows, not {kind}: "
                    f"import under another --name"
                )
            ds_id = ds.id
            parent = conn.execute(
                sa.select(dataset_versions.c.id, dataset_versions.c.version)
                .where(dataset_versions.c.dataset_id == ds_id)
                .order_by(dataset_versions.c.id.desc())
                .limit(1)
            ).first()
        version = _next_version(parent.version if parent else None)
        new_id = conn.execute(
            dataset_versions.insert().values(
                dataset_id=ds_id,
                version=version,
                content_hash=content_hash,
                parent_id=parent_id if parent_id is not None else (parent.id if parent else None),
                row_count=row_count,
                path=path,
                source_format=source_format,
                note=note,
                created_by=created_by,
                created_at=now,
            )
        ).inserted_primary_key[0]
        row = conn.execute(_SELECT.where(dataset_versions.c.id == new_id)).one()
    return _record(row)


def get_version(db: Database, name: str, version: str | None = None) -> DatasetVersion:
    """``version`` None means the latest."""
    q = _SELECT.where(datasets.c.name == name)
    q = q.where(dataset_versions.c.version == version) if version else q
    with db.begin() as conn:
        row = conn.execute(q.order_by(dataset_versions.c.id.desc()).limit(1)).first()
    if row is None:
        what = f"{name}@{version}" if version else name
        raise DatasetNotFound(f"no dataset version {what!r}; see `llmloop data list`")
    return _record(row)


def get_version_by_id(db: Database, version_id: int) -> DatasetVersion:
    with db.begin() as conn:
        row = conn.execute(_SELECT.where(dataset_versions.c.id == version_id)).first()
    if row is None:
        raise DatasetNotFound(f"no dataset version with id {version_id}")
    return _record(row)


def list_versions(db: Database, name: str | None = None) -> list[DatasetVersion]:
    q = _SELECT if name is None else _SELECT.where(datasets.c.name == name)
    with db.begin() as conn:
        return [_record(r) for r in conn.execute(q.order_by(dataset_versions.c.id))]


def _dataset_id(conn: sa.Connection, name: str) -> int:
    ds = conn.execute(sa.select(datasets.c.id).where(datasets.c.name == name)).first()
    if ds is None:
        raise DatasetNotFound(f"no dataset {name!r}; see `llmloop data list`")
    return ds.id


def rename_dataset(db: Database, old: str, new: str) -> None:
    """Rename a dataset; its versions (and their files, whose paths are recorded) stay as they are."""
    with db.begin() as conn:
        ds_id = _dataset_id(conn, old)
        if conn.execute(sa.select(datasets.c.id).where(datasets.c.name == new)).first() is not None:
            raise DatasetRefused(f"cannot rename {old!r} to {new!r}: a dataset {new!r} exists; pick another name "
                             f"or delete it first with `llmloop data delete {new}`")
        conn.execute(datasets.update().where(datasets.c.id == ds_id).values(name=new))


def get_description(db: Database, name: str) -> str:
    with db.begin() as conn:
        ds_id = _dataset_id(conn, name)
        return conn.execute(sa.select(datasets.c.description).where(datasets.c.id == ds_id)).scalar_one()


def set_description(db: Database, name: str, description: str) -> None:
    with db.begin() as conn:
        ds_id = _dataset_id(conn, name)
        conn.execute(datasets.update().where(datasets.c.id == ds_id).values(description=description))


def dependants(db: Database, name: str) -> list[str]:
    """What refers to dataset ``name``'s versions from outside it: versions of other datasets derived
    from them, model versions trained on them, loop rounds that built them. One line each."""
    from llmloop.store.tables import loop_rounds, model_versions

    with db.begin() as conn:
        ds_id = _dataset_id(conn, name)
        mine = {r.id: r.version for r in conn.execute(
            sa.select(dataset_versions.c.id, dataset_versions.c.version).where(dataset_versions.c.dataset_id == ds_id))}
        found = []
        child = dataset_versions.alias("child")
        q = (sa.select(datasets.c.name, child.c.version, child.c.parent_id)
             .join(datasets, datasets.c.id == child.c.dataset_id)
             .where(child.c.parent_id.in_(list(mine)), child.c.dataset_id != ds_id))
        for r in conn.execute(q):
            found.append(f"dataset version {r.name}@{r.version} was derived from {name}@{mine[r.parent_id]}")
        for r in conn.execute(sa.select(model_versions.c.name, model_versions.c.dataset_versions)):
            used = [mine[i] for i in (r.dataset_versions or []) if i in mine]
            if used:
                found.append(f"model version {r.name} was trained on {name}@{', '.join(used)}")
        for r in conn.execute(sa.select(loop_rounds.c.id, loop_rounds.c.dataset_version_id)
                              .where(loop_rounds.c.dataset_version_id.in_(list(mine)))):
            found.append(f"loop round {r.id} built {name}@{mine[r.dataset_version_id]}")
    return found


def delete_dataset(db: Database, name: str) -> list[DatasetVersion]:
    """Remove a dataset and all its versions from the store (one transaction); returns what was
    removed so the caller can purge the files. Versions of other datasets derived from these keep
    their rows and files; their parent link is cut and their note records the deleted parent."""
    removed = list_versions(db, name)
    with db.begin() as conn:
        ds_id = _dataset_id(conn, name)
        ids = [v.id for v in removed]
        label = {v.id: f"{name}@{v.version}" for v in removed}
        children = conn.execute(sa.select(dataset_versions.c.id, dataset_versions.c.parent_id, dataset_versions.c.note)
                                .where(dataset_versions.c.parent_id.in_(ids), dataset_versions.c.dataset_id != ds_id))
        for c in list(children):
            note = (c.note + " " if c.note else "") + f"[parent {label[c.parent_id]} deleted {utcnow():%Y-%m-%d}]"
            conn.execute(dataset_versions.update().where(dataset_versions.c.id == c.id).values(note=note))
        # children before parents: parent_id points inside the same dataset or at another dataset
        conn.execute(dataset_versions.update().where(dataset_versions.c.parent_id.in_(ids))
                     .values(parent_id=None))
        conn.execute(dataset_versions.delete().where(dataset_versions.c.dataset_id == ds_id))
        conn.execute(datasets.delete().where(datasets.c.id == ds_id))
    return removed
