"""M1: aliases move atomically and every move is audited, also under concurrent writers."""

from __future__ import annotations

import threading

import pytest

from llmloop.store import registry


def _versions(db, n=3):
    for i in range(n):
        registry.register(db, name=f"v1.{i}", kind="chat", base_model="/models/base")


def test_concurrent_moves_of_one_alias_form_one_consistent_audit_chain(db):
    _versions(db)
    errors: list[BaseException] = []

    def mover(k: int) -> None:
        try:
            for j in range(5):
                registry.set_alias(db, "canary", f"v1.{(k + j) % 3}", reason=f"w{k}-{j}")
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=mover, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = registry.alias_history(db, "canary")
    assert len(events) == 30
    assert events[0]["old_version"] is None  # exactly one writer created the alias
    for prev, cur in zip(events, events[1:]):
        assert cur["old_version"] == prev["new_version"], [(e["id"], e["old_version"], e["new_version"], e["reason"], str(e["created_at"])) for e in events]  # no lost update
    assert registry.resolve_alias(db, "canary") == events[-1]["new_version"]


def test_production_moves_stages_and_aliases_are_validated(db):
    _versions(db)
    registry.set_alias(db, "production", "v1.0")
    registry.set_alias(db, "production", "v1.1", reason="better")
    assert registry.get(db, "v1.0").stage == "archived" and registry.get(db, "v1.1").stage == "production"
    with pytest.raises(ValueError, match="name of a model version"):
        registry.set_alias(db, "v1.2", "v1.0")
    with pytest.raises(ValueError, match="not a valid name"):
        registry.set_alias(db, "bad name!", "v1.0")
    with pytest.raises(registry.VersionNotFound):
        registry.set_alias(db, "production", "v9.9")
    assert registry.resolve_alias(db, "production") == "v1.1"
    registry.set_alias(db, "candidate", "v1.2")
    registry.remove_alias(db, "candidate", reason="rejected")
    registry.remove_alias(db, "candidate")  # unknown: no-op, no event
    assert [(e["old_version"], e["new_version"], e["reason"]) for e in registry.alias_history(db, "candidate")] == [
        (None, "v1.2", ""), ("v1.2", "", "rejected")]


def test_archive_is_refused_while_aliased(db):
    _versions(db)
    registry.set_alias(db, "canary", "v1.2")
    with pytest.raises(ValueError, match="canary"):
        registry.archive(db, "v1.2")
    registry.set_alias(db, "canary", "v1.1")
    assert registry.archive(db, "v1.2", reason="old").stage == "archived"


def test_lineage_row_is_written_with_the_version_or_not_at_all(db):
    lin = registry.Lineage("v2.0", "merge", ["a", "b"], {"method": "slerp"}, {"tensors": 3})
    with pytest.raises(ValueError, match="lineage is for"):
        registry.register(db, name="v2.1", kind="chat", base_model="/m", lineage=lin)
    with pytest.raises(registry.VersionNotFound):
        registry.get(db, "v2.1")  # the version insert was rolled back with the failed lineage
    registry.register(db, name="v2.0", kind="chat", base_model="/m", lineage=lin)
    assert registry.get_lineage(db, "v2.0") == lin
