import feedback_seed as seed
import pytest
import sqlalchemy as sa

from llmloop.store import datasets, feedback, registry
from llmloop.store.db import alembic_config
from llmloop.store.ingest import UnitRejected
from llmloop.store.tables import metadata


def test_migrated_schema_matches_tables(db):
    """The Alembic migrations produce exactly the schema the code queries (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert alembic_config(db.url).get_main_option("script_location").endswith("migrations")


def test_migrations_have_one_head(db):
    """Areas branch off and a merge revision joins them: a second head means a missing merge."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(db.url))
    assert len(script.get_heads()) == 1, f"several heads {script.get_heads()}: add `alembic merge heads`"
    with db.engine.connect() as conn:
        assert set(MigrationContext.configure(conn).get_current_heads()) == set(script.get_heads())


def test_dataset_versions_increment_with_parent(db):
    v1 = datasets.add_version(db, name="faq", kind="sft", path="/x/1.jsonl", content_hash="a" * 64,
                              row_count=3, source_format="alpaca")
    v2 = datasets.add_version(db, name="faq", kind="sft", path="/x/2.jsonl", content_hash="b" * 64,
                              row_count=4, source_format="alpaca", note="more rows")
    assert (v1.version, v2.version) == ("v1.0", "v1.1")
    assert v2.parent_id == v1.id
    assert datasets.get_version(db, "faq").version == "v1.1"
    assert datasets.get_version(db, "faq", "v1.0").row_count == 3
    with pytest.raises(ValueError, match="holds sft rows"):
        datasets.add_version(db, name="faq", kind="preference", path="/x", content_hash="c" * 64,
                             row_count=1, source_format="trl")
    with pytest.raises(datasets.DatasetNotFound, match="llmloop data list"):
        datasets.get_version(db, "nope")


def test_alias_moves_are_atomic_and_audited(db):
    registry.register(db, name="v1.0", kind="chat", base_model="base")
    registry.register(db, name="v1.1", kind="chat", base_model="base", parent="v1.0", adapter_path="/a")
    registry.set_alias(db, "production", "v1.0", reason="first")
    registry.set_alias(db, "production", "v1.1", reason="won")
    assert registry.get(db, "production").name == "v1.1"
    assert registry.get(db, "v1.0").stage == "archived"
    assert registry.get(db, "v1.1").aliases == ("production",)
    hist = registry.alias_history(db, "production")
    assert [(h["old_version"], h["new_version"]) for h in hist] == [(None, "v1.0"), ("v1.0", "v1.1")]
    assert registry.next_version_name(db, "v1.1") == "v1.2"
    with pytest.raises(registry.VersionNotFound):
        registry.set_alias(db, "production", "v9.9")
    assert registry.get(db, "production").name == "v1.1"
    with pytest.raises(ValueError, match="immutable"):
        registry.register(db, name="v1.0", kind="chat", base_model="base")


def test_votes_join_battles_and_the_writer_rejects_bad_feedback(db):
    msgs = [{"role": "user", "content": "hi"}]
    seed.battle(db, battle_id="b1", user_id="u1", messages=msgs, answers=[("r1", "v1.0", "A!"), ("r2", "v1.0", "B!")])
    vid = seed.vote(db, battle_id="b1", user_id="u1", choice="b")
    rows = feedback.voted_battles(db)
    assert [(r.vote_id, r.choice, r.output_a, r.output_b) for r in rows] == [(vid, "b", "A!", "B!")]
    for (battle, user, choice), code, says in ((("b1", "u1", "a"), "duplicate", "already voted"),
                                               (("nope", "u1", "a"), "not_found", "no arena battle"),
                                               (("b1", "u2", "c"), "invalid", "must be one of")):
        with pytest.raises(UnitRejected, match=says) as e:
            seed.vote(db, battle_id=battle, user_id=user, choice=choice)
        assert [x.code for x in e.value.errors] == [code]
    seed.thumb(db, request_id="r1", user_id="u1", rating=-1, comment="curt", correction="Better.")
    with pytest.raises(UnitRejected, match="no answer"):
        seed.thumb(db, request_id="zzz", user_id="u1", rating=1)
    assert [t.correction for t in feedback.list_thumbs(db)] == ["Better."]
    assert feedback.count_votes(db) == 1 and feedback.count_votes(db, after_id=vid) == 0
    with db.begin() as conn:
        assert conn.execute(sa.text("select count(*) from votes")).scalar() == 1
