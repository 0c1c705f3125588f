"""Roles are enforced by the server: annotators read and curate, only admins train and roll out."""

from __future__ import annotations

from api_helpers import error


def test_whoami_names_the_role(api) -> None:
    assert api.admin.get("/api/v1/whoami").json()["admin"] is True
    me = api.annotator.get("/api/v1/whoami").json()
    assert me["role"] == "annotator" and me["admin"] is False


def test_no_key_is_401_and_user_key_is_403(api) -> None:
    assert error(api.anonymous.get("/api/v1/models"), 401)["code"] == "missing_api_key"
    assert error(api.user.get("/api/v1/models"), 403)["code"] == "insufficient_role"


def test_annotator_cannot_promote_or_train_but_admin_can_promote(api) -> None:
    from llmloop.store import registry

    e = error(api.annotator.post("/api/v1/loop/promote", json={"version": "v1.1"}), 403)
    assert "admin" in e["message"]
    assert error(api.annotator.post("/api/v1/train/jobs", json={"stage": "sft", "yaml": "model: v1.0\ndataset: x"}),
                 403)["code"] == "insufficient_role"
    for path in ("/api/v1/loop/rollback", "/api/v1/loop/pause", "/api/v1/loop/resume"):
        error(api.annotator.post(path, json={}), 403)
    assert registry.resolve_alias(api.db, "production") == "v1.0"  # nothing moved

    # the admin gets past the role check: the controller answers (no round is in progress) …
    e = error(api.admin.post("/api/v1/loop/promote", json={"reason": "gate passed"}), 400)
    assert "no round is in progress" in e["message"]
    # … and moving production by hand is the admin's
    r = api.admin.put("/api/v1/models/aliases/production", json={"version": "v1.1", "reason": "hand promotion"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "v1.1" and "production" in r.json()["aliases"]
    assert registry.resolve_alias(api.db, "production") == "v1.1"
    error(api.annotator.put("/api/v1/models/aliases/production", json={"version": "v1.0"}), 403)
    assert registry.resolve_alias(api.db, "production") == "v1.1"
