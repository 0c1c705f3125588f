"""One error base, mapped once (``llmloop.errors``, ``cli/main.py:LlmloopGroup``, ``serve/http_errors.py:http_error``).

Every exception class llmloop defines derives from ``LlmloopError``; the CLI turns one into its
message and exit code (2: the user's to fix), the HTTP API into its status and OpenAI's error body.
Anything else is a bug: a traceback on the command line, a 500 over HTTP — never exit 2 or a 4xx.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import httpx
import openai
import pytest
from typer.testing import CliRunner

import llmloop
from llmloop.errors import (
    Conflict,
    Forbidden,
    LlmloopError,
    NotFound,
    Unavailable,
    UserError,
    exit_code_for,
)

# Signals that must pass through ``except Exception`` (a cancel, a body over the limit): not errors.
SIGNALS = {"llmloop.api.tasks.Cancelled", "llmloop.train.job_runner.JobCancelled", "llmloop.serve.gateway._TooLarge"}
# The fault drill's stand-in for an unexpected engine failure: it must behave as a bug does (a 500).
BUG_STANDINS = {"llmloop.demo.faults.InjectedFault"}


def _exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(llmloop.__path__, "llmloop."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, BaseException):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_class_derives_from_llmloop_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 30 and "llmloop.train.config.ConfigError" in classes  # the walk found them
    strays = sorted(name for name, cls in classes.items()
                    if name not in SIGNALS | BUG_STANDINS and not issubclass(cls, LlmloopError))
    assert strays == [], f"derive these from an llmloop.errors class: {strays}"
    for name in SIGNALS:
        assert not issubclass(classes[name], Exception), name  # still a BaseException signal
    for name in BUG_STANDINS:
        assert not issubclass(classes[name], LlmloopError), name


def test_user_errors_keep_their_builtin_base_and_say_whose_fault() -> None:
    from llmloop.data.rows import DataError, DataValidationError
    from llmloop.models.catalog import ModelFetchError, UnknownCatalogModel
    from llmloop.store.datasets import DatasetNotFound
    from llmloop.store.loop_events import StaleState
    from llmloop.store.registry import VersionNotFound
    from llmloop.store.sessions import SessionForbidden
    from llmloop.train.config import ConfigError

    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, UserError)
    assert issubclass(VersionNotFound, LookupError) and issubclass(VersionNotFound, NotFound)
    assert issubclass(SessionForbidden, PermissionError) and issubclass(SessionForbidden, Forbidden)
    assert issubclass(StaleState, Conflict) and issubclass(ModelFetchError, Unavailable)
    assert issubclass(UnknownCatalogModel, ModelFetchError) and UnknownCatalogModel("x").exit_code == 2
    assert [exit_code_for(e) for e in (DataError("x"), DatasetNotFound("x"), ModelFetchError("x"), KeyError("x"))] == [
        2, 2, 3, None]
    assert (DataValidationError([]).http_status, DatasetNotFound("x").http_status, StaleState("x").http_status) == (422, 404, 409)


# -- the command line ------------------------------------------------------------------------------
def test_cli_user_error_exits_2_with_the_message_and_no_traceback() -> None:
    from llmloop.cli.main import app

    r = CliRunner().invoke(app, ["loop", "explain", "v9.9"])
    assert r.exit_code == 2, r.output
    assert "error: no model version or alias 'v9.9'" in r.output and "Traceback" not in r.output
    assert isinstance(r.exception, SystemExit)  # handled: no exception escaped the command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "export-llamafactory", "OUT", "-c", "{home}/x.yaml"], "cannot tell the stage of"),
        (["jobs", "logs", "999"], "no job"),
        (["data", "dedup", "anything"], "pass exactly one of --exact, --minhash THRESH or --semantic THRESH"),
    ],
)
def test_cli_argument_checks_are_user_errors(tmp_path, args: list[str], message: str) -> None:
    from llmloop.cli.main import app

    (tmp_path / "x.yaml").write_text("learning_rate: 1e-4\n", encoding="utf-8")
    r = CliRunner().invoke(app, [a.format(home=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert f"error: {message}" in " ".join(r.output.split()) and "Traceback" not in r.output


def test_cli_unavailable_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmloop.loop.explain
    from llmloop.cli.main import app

    def down(*_: object, **__: object) -> None:
        raise Unavailable("the registry at https://example.invalid cannot be reached; check the network")

    monkeypatch.setattr(llmloop.loop.explain, "explain", down)
    r = CliRunner().invoke(app, ["loop", "explain", "v1.0"])
    assert r.exit_code == 3 and "error: the registry at https://example.invalid cannot be reached" in r.output


def test_cli_bug_keeps_its_traceback_and_never_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmloop.loop.explain
    from llmloop.cli.main import app

    def bug(*_: object, **__: object) -> None:
        raise KeyError("a bug, not the user's input")

    monkeypatch.setattr(llmloop.loop.explain, "explain", bug)
    r = CliRunner().invoke(app, ["loop", "explain", "v1.0"])
    assert r.exit_code != 2 and isinstance(r.exception, KeyError) and "error:" not in r.output
    # the real command line, in a process of its own: Python's traceback, exit 1
    script = ("import llmloop.loop.explain as m\n"
              "def bug(*a, **k):\n    raise KeyError('a bug, not the user input')\n"
              "m.explain = bug\n"
              "from llmloop.cli.main import app\n"
              "app(['loop', 'explain', 'v1.0'])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                          env={**__import__("os").environ, "_TYPER_STANDARD_TRACEBACK": "1"})
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr and "KeyError: 'a bug, not the user input'" in done.stderr


# -- HTTP ------------------------------------------------------------------------------------------
@pytest.fixture
def app(db):
    from llmloop.app import create_app
    from llmloop.inference.echo import EchoEngine

    return create_app(db, EchoEngine())


def test_http_not_found_is_a_404_in_openai_shape(app) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)
        with pytest.raises(openai.NotFoundError) as e:
            client.models.retrieve("v9.9")
        assert e.value.status_code == 404 and set(e.value.body) == {"message", "type", "param", "code"}
        r = http.get("/api/v1/models/v9.9")  # the admin API: auth is off, so 401 before any lookup
        assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_http_library_errors_map_through_their_class_and_bugs_answer_500(app, monkeypatch: pytest.MonkeyPatch) -> None:
    """A route that raises a library error gets its status and code; a bare KeyError or ValueError
    (a bug) gets 500 — not the 400 that `api/common.py` used to give any ValueError."""
    from fastapi.testclient import TestClient

    from llmloop.store.registry import VersionNotFound

    gateway = app.state.gateway
    raised: list[BaseException] = []

    def models_list() -> None:
        raise raised[-1]

    monkeypatch.setattr(gateway.models, "list", models_list)
    with TestClient(app, raise_server_exceptions=False) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)
        raised.append(VersionNotFound("no model version 'v9.9'; see `llmloop models list`"))
        with pytest.raises(openai.NotFoundError) as e:
            client.models.list()
        assert e.value.body == {"message": "no model version 'v9.9'; see `llmloop models list`",
                                "type": "not_found_error", "param": None, "code": "not_found"}
        raised.append(Conflict("already voted on this battle"))
        with pytest.raises(openai.ConflictError) as c:
            client.models.list()
        assert c.value.body["code"] == "conflict"
        for bug in (KeyError("model"), ValueError("a bug")):
            raised.append(bug)
            with pytest.raises(openai.InternalServerError) as b:
                client.models.list()
            assert b.value.status_code == 500 and b.value.body["type"] == "server_error"
            r = http.get("/v1/models")
            assert r.status_code == 500 and set(r.json()) == {"error"}


def test_http_error_renders_any_llmloop_error() -> None:
    import json

    from llmloop.data.rows import DataValidationError
    from llmloop.serve.http_errors import ServingError, http_error

    r = http_error(DataValidationError([]))
    assert r.status_code == 422 and json.loads(r.body)["error"]["code"] == "invalid_rows"
    r = http_error(ServingError("slow down", status=429, type="rate_limit_error", code="rate_limited",
                                headers={"retry-after": "3"}))
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert json.loads(r.body) == {"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                                            "code": "rate_limited"}}
    r = http_error(LlmloopError("the job runner stopped"))
    assert r.status_code == 500 and json.loads(r.body)["error"]["type"] == "server_error"
    assert httpx.codes.is_server_error(http_error(Unavailable("down")).status_code)
