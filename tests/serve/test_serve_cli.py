"""``llmloop serve`` argument handling (the running server is covered by test_durability)."""

from __future__ import annotations

from typer.testing import CliRunner

from llmloop.cli.main import app


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
