"""API keys, roles, rate/size limits and CORS through a real server and the real ``openai`` client."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from llmloop.app import create_app
from llmloop.cli.main import app as cli
from llmloop.serve.config import ServeConfig
from llmloop.store import apikeys, feedback

HI = [{"role": "user", "content": "Where is my order?"}]


def _err(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code, body
    return body["error"]


def test_keys_are_hashed_at_rest_and_revocable(db) -> None:
    secret, key = apikeys.create_key(db, name="ui", role="annotator", rate_limit_per_minute=5)
    assert secret.startswith("llk_") and len(secret) > 40 and key.prefix == secret[:12]
    with db.begin() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash FROM api_keys").scalar()
    assert stored == apikeys.hash_key(secret) and secret not in stored
    assert apikeys.authenticate(db, secret).role == "annotator"
    assert apikeys.authenticate(db, secret[:-1] + "x") is None
    assert apikeys.any_active(db)
    assert apikeys.revoke_key(db, key.prefix).revoked_at is not None
    assert apikeys.authenticate(db, secret) is None and not apikeys.any_active(db)
    with pytest.raises(apikeys.ApiKeyError, match="role must be one of"):
        apikeys.create_key(db, name="x", role="root")
    with pytest.raises(apikeys.ApiKeyError, match="keys list"):
        apikeys.revoke_key(db, "999")


def test_keys_cli_create_list_revoke(llmloop_home) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["serve", "keys", "create", "--name", "ops", "--role", "admin"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("llk_")
    listed = runner.invoke(cli, ["serve", "keys", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and secret[:12] in listed.output and secret not in listed.output
    assert runner.invoke(cli, ["serve", "keys", "revoke", secret[:12]]).exit_code == 0
    bad = runner.invoke(cli, ["serve", "keys", "create", "--name", "x", "--role", "boss"])
    assert bad.exit_code != 0 and "role must be one of" in bad.output


def test_auth_is_off_without_keys_and_on_once_one_exists(versions, engine, serve_app) -> None:
    with serve_app(create_app(db=versions, engine=engine)) as url:
        ok = httpx.post(f"{url}/v1/chat/completions", json={"model": "v1.0", "messages": HI, "max_tokens": 2})
        assert ok.status_code == 200  # the embedded demo: no key needed
        assert httpx.get(f"{url}/v1/admin/split").status_code == 200  # local trust: loopback may administer
        from llmloop.serve.auth import AuthService

        with pytest.raises(Exception, match="non-local client") as e:  # anyone else needs a key
            AuthService(versions).principal(None, "admin", "10.1.2.3")
        assert e.value.status == 401 and e.value.code == "auth_disabled"
        admin, _ = apikeys.create_key(versions, name="ops", role="admin")
        versions_before = len(feedback.list_thumbs(versions))
        time.sleep(5.1)  # the key cache (5 s) notices a key created by another process
        _err(httpx.post(f"{url}/v1/chat/completions", json={"model": "v1.0", "messages": HI}), 401, "missing_api_key")
        _err(httpx.post(f"{url}/v1/chat/completions", json={"model": "v1.0", "messages": HI},
                        headers={"Authorization": "Bearer llk_wrong"}), 401, "invalid_api_key")
        r = httpx.get(f"{url}/v1/admin/split", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200 and r.json()["source"] == "default"
        assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/metrics").status_code == 200
        assert len(feedback.list_thumbs(versions)) == versions_before


def test_roles_users_limits_with_the_openai_client(versions, engine, serve_app) -> None:
    admin, _ = apikeys.create_key(versions, name="ops", role="admin")
    user, _ = apikeys.create_key(versions, name="alice-app", role="user", user_id="alice", max_tokens=8,
                                 rate_limit_per_minute=4)
    other, _ = apikeys.create_key(versions, name="bob-app", role="user", user_id="bob")
    annotator, _ = apikeys.create_key(versions, name="labeller", role="annotator")
    config = ServeConfig(max_body_bytes=4096, cors_origins=["https://ui.example"])
    with serve_app(create_app(db=versions, engine=engine, config=config)) as url:
        alice = OpenAI(base_url=f"{url}/v1", api_key=user, max_retries=0, timeout=60)
        reply = alice.chat.completions.create(model="production", messages=HI, max_tokens=4)
        assert feedback.get_completion(versions, reply.id).user_id == "alice"  # the key's user
        with pytest.raises(openai.PermissionDeniedError) as e:  # a user key cannot act for someone else
            alice.chat.completions.create(model="production", messages=HI, max_tokens=4, user="mallory")
        assert e.value.body["code"] == "user_mismatch"
        with pytest.raises(openai.APIStatusError) as e:  # above the key's token limit
            alice.chat.completions.create(model="production", messages=HI, max_tokens=50)
        assert e.value.status_code == 413 and e.value.body["code"] == "max_tokens_too_large"
        for _ in range(2):  # 4 per minute: the answer and the 413 spent two (the 403 named no valid caller)
            alice.chat.completions.create(model="production", messages=HI, max_tokens=2)
        with pytest.raises(openai.RateLimitError) as e:
            alice.chat.completions.create(model="production", messages=HI, max_tokens=4)
        assert int(e.value.response.headers["retry-after"]) >= 1
        # feedback: a user key may rate only what it was served; an annotator may rate anything
        bob = {"Authorization": f"Bearer {other}"}
        _err(httpx.post(f"{url}/v1/feedback/thumbs", headers=bob, json={"request_id": reply.id, "rating": 1}),
             403, "not_yours")
        ok = httpx.post(f"{url}/v1/feedback/thumbs", headers={"Authorization": f"Bearer {annotator}"},
                        json={"request_id": reply.id, "rating": -1, "user": "reviewer-7"})
        assert ok.status_code == 201
        assert [(t.user_id, t.rating) for t in feedback.list_thumbs(versions)] == [("reviewer-7", -1)]
        # admin endpoints: 403 for lower roles
        _err(httpx.put(f"{url}/v1/admin/split", headers=bob, json={"weights": {"production": 1}}), 403,
             "insufficient_role")
        # body size: 413 before anything is parsed or stored
        big = {"model": "v1.0", "messages": [{"role": "user", "content": "x" * 5000}]}
        _err(httpx.post(f"{url}/v1/chat/completions", headers=bob, json=big), 413, "body_too_large")

        def chunked():  # no Content-Length: the limit is enforced while the body streams in
            yield b'{"model": "v1.0", "messages": [{"role": "user", "content": "'
            yield from (b"x" * 1000 for _ in range(5))
            yield b'"}]}'

        _err(httpx.post(f"{url}/v1/chat/completions", headers={**bob, "content-type": "application/json"},
                        content=chunked()), 413, "body_too_large")
        # CORS: the configured origin is allowed, preflight included
        pre = httpx.options(f"{url}/v1/chat/completions", headers={
            "Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://ui.example"
        assert "access-control-allow-origin" not in httpx.get(f"{url}/health", headers={"Origin": "https://evil.example"}).headers
        # keys through the admin REST API; a revoked key stops working at once
        made = httpx.post(f"{url}/v1/admin/keys", headers={"Authorization": f"Bearer {admin}"},
                          json={"name": "tmp", "role": "user"})
        assert made.status_code == 201 and made.json()["key"].startswith("llk_")
        tmp = {"Authorization": f"Bearer {made.json()['key']}"}
        assert httpx.get(f"{url}/v1/models", headers=tmp).status_code == 200
        listed = httpx.get(f"{url}/v1/admin/keys", headers={"Authorization": f"Bearer {admin}"}).json()
        assert all(k["key"] is None for k in listed) and len(listed) == 5
        assert httpx.delete(f"{url}/v1/admin/keys/{made.json()['id']}",
                            headers={"Authorization": f"Bearer {admin}"}).json()["revoked_at"]
        _err(httpx.get(f"{url}/v1/models", headers=tmp), 401, "invalid_api_key")


def test_require_keys_with_no_keys_refuses_everyone(versions, engine, serve_app) -> None:
    with serve_app(create_app(db=versions, engine=engine, config=ServeConfig(require_keys=True))) as url:
        _err(httpx.post(f"{url}/v1/feedback/vote", json={"battle_id": "b", "choice": "a"}), 401, "missing_api_key")
        assert feedback.count_votes(versions) == 0


def test_rate_limit_applies_per_user_when_auth_is_off(versions, engine, serve_app) -> None:
    with serve_app(create_app(db=versions, engine=engine, config=ServeConfig(rate_limit_per_minute=2))) as url:
        codes = [httpx.get(f"{url}/v1/models", headers={"X-LLMLoop-User": "u1"}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert httpx.get(f"{url}/v1/models", headers={"X-LLMLoop-User": "u2"}).status_code == 200
