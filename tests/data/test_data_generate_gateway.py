"""D2 and D6 against a REAL llmloop gateway process serving the tiny model over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import feedback_seed as seed
import pytest
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.data.generate import GenerateConfig, partial_path
from llmloop.data.versions import read_rows, resolve
from llmloop.serve.process import GatewayProcess
from llmloop.store import open_database, registry

runner = CliRunner()
pytestmark = pytest.mark.slow


def test_generate_and_judge_through_the_gateway(llmloop_home: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    db = open_database()  # the SQLite file under $LLMLOOP_HOME, which the gateway opens too
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v1.0")
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("Where is my order?\nHow do I get a refund?\nWhat does the warranty cover?\n", encoding="utf-8")
    gw = GatewayProcess(llmloop_home, log_path=tmp_path / "serve.log", extra_args=("--threads", "1"),
                        env={"OMP_NUM_THREADS": "1"})
    try:
        gw.start(timeout=120)
        base = f"{gw.url}/v1"
        common = ["--seeds", str(seeds), "--base-url", base, "--model", "production", "--max-tokens", "12",
                  "--temperature", "1.0", "--rouge-threshold", "0.95"]

        # 1. evol-instruct and self-instruct through the gateway, as a user runs them
        r = runner.invoke(app, ["data", "generate", "evol-instruct", "--name", "evol", "--concurrency", "2", *common])
        assert r.exit_code == 0, r.output
        rows = read_rows(resolve(db, "evol"))
        assert rows and all(x["meta"]["generator"] == f"openai:production@{base}" for x in rows)
        served = {c for c in _served_outputs(db)}
        assert all(x["messages"][1]["content"].strip() in served for x in rows)  # answers came from the gateway

        # 2. interrupt a run with SIGKILL after some rows are on file, then resume it
        args = ["data", "generate", "self-instruct", "--name", "si", "--num", "6", "--concurrency", "1", *common]
        cfg = GenerateConfig(method="self-instruct", seeds=str(seeds), name="si", num=6, concurrency=1,
                             rouge_threshold=0.95)
        partial = partial_path(db, cfg, f"openai:production@{base}")
        proc = subprocess.Popen([sys.executable, "-m", "llmloop.cli.main", *args],
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if partial.exists() and len(partial.read_text(encoding="utf-8").splitlines()) >= 2:
                break
            time.sleep(0.02)
        proc.kill()
        proc.wait(timeout=10)
        assert proc.returncode != 0, "the run finished before it could be interrupted"
        before = [json.loads(x) for x in partial.read_text(encoding="utf-8").splitlines() if x.strip()]
        assert len(before) >= 2
        with pytest.raises(LookupError):
            resolve(db, "si")  # nothing stored by the killed run
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert f"resumed: {len(before)} finished task(s)" in r.output
        rows = read_rows(resolve(db, "si"))
        kept_before = [x["instruction"] for x in before if x["status"] == "kept"]
        assert [x["messages"][0]["content"] for x in rows][: len(kept_before)] == kept_before
        # the tiny model's instructions are noise: some come out empty and are dropped, so up to --num are kept
        assert 1 <= len(rows) <= 6 and f"{len(rows)} sft rows" in r.output and not partial.exists()

        # 3. the gateway as an AI judge: the tiny model cannot answer in JSON, so every pair fails and
        #    is dropped (reported), never guessed
        seed.battle(db, battle_id="b1", user_id="u", messages=[{"role": "user", "content": "Hi?"}],
                    answers=[("b1-a", "v1.0", "Hello there."), ("b1-b", "v1.0", "Go away.")])
        r = runner.invoke(app, ["data", "build-preferences", "--from", "judge", "--name", "judged",
                                "--judge", f"openai:production@{base}"])
        assert r.exit_code == 0, r.output
        assert "dropped 1 pair(s): failed" in r.output and "nothing stored" in r.output
    finally:
        gw.stop()
        db.dispose()


def _served_outputs(db) -> list[str]:  # noqa: ANN001
    import sqlalchemy as sa

    from llmloop.store.tables import completions

    with db.begin() as conn:
        return [o.strip() for (o,) in conn.execute(sa.select(completions.c.output))]
