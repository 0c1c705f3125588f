"""``llmloop serve`` argument handling (the running server is covered by test_durability).

The flags are generated from ``ServeConfig``'s fields (``cli/config_flags.py``): every field has a
flag and an env var, its help is the field's description and default, and the spellings the CLI had
before (``--rate-limit``, ``--cors-origin``, ``--session-ttl``, ``LLMLOOP_API_KEY``,
``LLMLOOP_UPSTREAM_API_KEY``) still work."""

from __future__ import annotations

import types
import typing

import pytest
from typer.testing import CliRunner

from llmloop.cli.config_flags import flag_name
from llmloop.cli.main import app
from llmloop.serve.config import ServeConfig

FIELDS = ServeConfig.model_fields
WIDE = {"COLUMNS": "3000"}  # one line per option, so each option's help can be read whole


def _other_value(name: str) -> tuple[list[str], object]:
    """Command-line words that set field ``name`` to a value other than its default, and that value."""
    field = FIELDS[name]
    default = field.get_default(call_default_factory=True)
    optional = typing.get_origin(field.annotation) in (typing.Union, types.UnionType)
    kind = typing.get_args(field.annotation)[0] if optional else field.annotation
    flag = flag_name(name)
    if name == "split":
        return [flag, "production=90,candidate=10"], "production=90,candidate=10"
    if typing.get_origin(kind) is typing.Literal:
        value = next(c for c in typing.get_args(kind) if c != default)
    elif kind is bool:
        return [flag], True
    elif typing.get_origin(kind) is list:
        return [flag, "https://a.example", flag, "https://b.example"], ["https://a.example", "https://b.example"]
    elif kind is int:
        value = 7 if default is None else default + 1
    elif kind is float:
        value = 2.5 if default is None else default + 0.5
    else:
        value = f"{name}-set"
    return [flag, str(value)], value


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[ServeConfig]:
    """The ``ServeConfig`` each ``llmloop serve`` run built, with the gateway's start left out (a real
    process is started in ``test_env_var_reaches_a_real_gateway`` and by the other serve tests)."""
    seen: list[ServeConfig] = []
    monkeypatch.setattr("llmloop.app.run_gateway", seen.append)
    return seen


def test_every_serveconfig_field_has_a_flag_whose_value_reaches_the_config(parsed: list[ServeConfig]) -> None:
    for name in FIELDS:
        words, value = _other_value(name)
        out = CliRunner().invoke(app, ["serve", *words])
        assert out.exit_code == 0, (name, out.output)
        config = parsed.pop()
        assert getattr(config, name) == value, name
        # and nothing else moved
        assert config.model_dump(exclude={name}) == ServeConfig().model_dump(exclude={name}), name


def test_every_field_is_also_an_env_var(parsed: list[ServeConfig]) -> None:
    env = {"LLMLOOP_SERVE_PORT": "8123", "LLMLOOP_SERVE_ENGINE": "echo", "LLMLOOP_SERVE_REQUIRE_KEYS": "1",
           "LLMLOOP_SERVE_RECONCILE_SECONDS": "30", "LLMLOOP_SERVE_CORS_ORIGINS": "https://a.example https://b.example"}
    assert CliRunner().invoke(app, ["serve"], env=env).exit_code == 0
    (config,) = parsed
    assert (config.port, config.engine, config.require_keys, config.reconcile_seconds) == (8123, "echo", True, 30)
    assert config.cors_origins == ["https://a.example", "https://b.example"]
    # a flag wins over the env var
    assert CliRunner().invoke(app, ["serve", "--port", "8124"], env=env).exit_code == 0
    assert parsed.pop().port == 8124


def test_old_flag_spellings_and_env_vars_still_work(parsed: list[ServeConfig]) -> None:
    out = CliRunner().invoke(app, ["serve", "--rate-limit", "600", "--cors-origin", "https://ui.example", "--cors-origin",
                                   "https://b.example", "--session-ttl", "60", "--require-keys", "--json-logs", "--ui"],
                             env={"LLMLOOP_API_KEY": "llk_ui", "LLMLOOP_UPSTREAM_API_KEY": "up-secret"})
    assert out.exit_code == 0, out.output
    (config,) = parsed
    assert config.rate_limit_per_minute == 600 and config.cors_origins == ["https://ui.example", "https://b.example"]
    assert config.session_ttl_seconds == 60 and config.require_keys and config.json_logs and config.ui
    assert config.ui_api_key == "llk_ui" and config.upstream_api_key == "up-secret"
    # the generated env var comes first
    CliRunner().invoke(app, ["serve"], env={"LLMLOOP_API_KEY": "llk_ui", "LLMLOOP_SERVE_UI_API_KEY": "llk_serve"})
    assert parsed.pop().ui_api_key == "llk_serve"


def test_help_shows_each_fields_description_default_and_env_var() -> None:
    out = CliRunner().invoke(app, ["serve", "--help"], env=WIDE).output
    lines = {}
    for line in out.splitlines():
        words = line.strip("│ ").split()
        if words and words[0].startswith("--"):
            lines[words[0].split(",")[0]] = " ".join(words)
    for name, field in FIELDS.items():
        line = lines[flag_name(name)]
        assert " ".join((field.description or "").split()) in line, name
        assert f"LLMLOOP_SERVE_{name.upper()}" in line, name
        default = field.get_default(call_default_factory=True)
        if isinstance(default, bool):
            assert f"[default: {'' if default else 'no-'}{flag_name(name)[2:]}]" in line, name
        elif default not in (None, []):
            assert f"[default: {default}]" in line, name


def test_bad_values_name_the_flag() -> None:
    runner = CliRunner()
    for words, flag in ((["--threads", "0"], "--threads"), (["--rate-limit", "0"], "--rate-limit-per-minute"),
                        (["--engine", "nope"], "--engine"), (["--max-body-bytes", "10"], "--max-body-bytes")):
        out = runner.invoke(app, ["serve", *words], env=WIDE)
        assert out.exit_code == 2 and flag in out.output, (words, out.output)


def test_serve_help_and_bad_split_names_the_flag() -> None:
    runner = CliRunner()
    assert "--split" in runner.invoke(app, ["serve", "--help"]).output
    bad = runner.invoke(app, ["serve", "--split", "production=ninety"])
    assert bad.exit_code != 0 and "--split" in bad.output and "production=90,candidate=10" in bad.output


def test_serve_ui_flag_serves_the_web_ui_on_the_gateway(tmp_path, llmloop_home) -> None:
    """``llmloop serve --ui``: one real process answers the OpenAI API and the Gradio UI at /ui; the UI's
    role comes from --ui-api-key (read from the store), and a key the store does not know is refused."""
    import httpx
    import pytest

    pytest.importorskip("gradio")
    from llmloop.serve.process import GatewayProcess
    from llmloop.store import apikeys, open_database, registry

    db = open_database()
    registry.register(db, name="v1.0", kind="chat", base_model="echo")
    registry.set_alias(db, "production", "v1.0")
    secret, _ = apikeys.create_key(db, name="ui", role="annotator")
    env = {"OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    gateway = GatewayProcess(llmloop_home, log_path=tmp_path / "gw.log", env={**env, "LLMLOOP_API_KEY": secret},
                             extra_args=("--engine", "echo", "--ui"))
    with gateway:
        page = httpx.get(f"{gateway.url}/ui/", timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        # the UI sits beside the API, not instead of it
        hi = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                        json={"model": "production", "messages": [{"role": "user", "content": "hello there"}]})
        assert hi.status_code == 200 and hi.json()["choices"][0]["message"]["content"] == "hello there"
    bad = GatewayProcess(llmloop_home, log_path=tmp_path / "bad.log", env=env,
                         extra_args=("--engine", "echo", "--ui", "--ui-api-key", "llk_not-a-key"))
    with pytest.raises(RuntimeError, match="--ui-api-key is not an active key"):
        bad.start(timeout=60)


def test_env_var_reaches_a_real_gateway(tmp_path, llmloop_home) -> None:
    """LLMLOOP_SERVE_MAX_BODY_BYTES (a field the hand-written CLI had no flag for its env var) in a real
    ``llmloop serve`` process: a larger body is refused with 413, a smaller one answered."""
    import httpx

    from llmloop.serve.process import GatewayProcess
    from llmloop.store import open_database, registry

    db = open_database()
    registry.register(db, name="v1.0", kind="chat", base_model="echo")
    registry.set_alias(db, "production", "v1.0")
    env = {"OMP_NUM_THREADS": "1", "LLMLOOP_SERVE_MAX_BODY_BYTES": "2048", "LLMLOOP_SERVE_ENGINE": "echo"}
    with GatewayProcess(llmloop_home, log_path=tmp_path / "gw.log", env=env) as gateway:
        url = f"{gateway.url}/v1/chat/completions"
        small = httpx.post(url, json={"model": "production", "messages": [{"role": "user", "content": "hi"}]})
        assert small.status_code == 200 and small.json()["choices"][0]["message"]["content"] == "hi"
        big = httpx.post(url, json={"model": "production", "messages": [{"role": "user", "content": "x" * 4000}]})
        assert big.status_code == 413
