import pytest

from llmloop.store import traffic


def test_split_history_newest_in_force(db):
    assert traffic.get_split(db) is None
    traffic.set_split(db, {"production": 1.0}, reason="start", actor="admin")
    traffic.set_split(db, {"production": 95, "candidate": 5}, reason="canary 5%", actor="loop")
    now = traffic.get_split(db)
    assert now.weights == {"production": 95.0, "candidate": 5.0} and now.actor == "loop"
    assert [s.reason for s in traffic.split_history(db)] == ["canary 5%", "start"]


@pytest.mark.parametrize("bad", [{}, {"production": -1}, {"production": 0, "candidate": 0}])
def test_bad_splits_are_refused_and_not_stored(db, bad):
    with pytest.raises(ValueError, match="traffic split"):
        traffic.set_split(db, bad)
    assert traffic.get_split(db) is None
