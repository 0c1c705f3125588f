"""A vote acknowledged with 201 survives the server being SIGKILLed under load.

``llmloop serve`` runs as a real subprocess against the SQLite file in the test's LLMLOOP_HOME;
client threads post votes as fast as they can; the server is killed mid-load; every vote a client
got a 201 for must then be in the database.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from llmloop.serve.process import GatewayProcess
from llmloop.store import feedback, open_database


def test_acknowledged_votes_survive_sigkill(register, llmloop_home: Path, tmp_path: Path) -> None:
    db = open_database()  # the SQLite file under $LLMLOOP_HOME, which the server opens too
    assert db.url.startswith("sqlite") and str(llmloop_home) in db.url
    register(db)
    server = GatewayProcess(llmloop_home, log_path=tmp_path / "serve.log", extra_args=("--threads", "1"),
                            env={"OMP_NUM_THREADS": "1"})
    try:
        server.start(timeout=90)
        url = server.url
        battles = []
        for _ in range(3):
            r = httpx.post(f"{url}/v1/arena", timeout=60, json={
                "messages": [{"role": "user", "content": "Where is my order?"}], "user": "seed", "max_tokens": 4})
            assert r.status_code == 200, r.text
            battles.append(r.json()["battle_id"])

        acked: list[tuple[str, str, int]] = []
        cut_off = threading.Event()  # a client saw the connection die: the kill landed mid-load
        stop = threading.Event()

        def post_votes(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                i = 0
                while not stop.is_set():
                    battle, user = battles[i % len(battles)], f"w{worker}-u{i}"
                    try:
                        r = client.post("/v1/feedback/vote", json={"battle_id": battle, "choice": "ab"[i % 2], "user": user})
                    except httpx.TransportError:
                        cut_off.set()
                        return
                    assert r.status_code == 201, r.text
                    acked.append((battle, user, r.json()["id"]))
                    i += 1

        threads = [threading.Thread(target=post_votes, args=(w,), daemon=True) for w in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        for t in threads:
            t.join(timeout=15)
        stop.set()
    finally:
        server.kill()
    assert cut_off.is_set(), "no client was cut off: the server was not killed under load"
    assert len(acked) >= 60, f"only {len(acked)} votes were acknowledged before the kill"
    db.dispose()

    db = open_database()
    stored = {(v.battle_id, v.user_id): v.vote_id for v in feedback.voted_battles(db)}
    lost = [(b, u) for b, u, _ in acked if (b, u) not in stored]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged votes were lost, e.g. {lost[:3]}"
    assert all(stored[(b, u)] == vid for b, u, vid in acked)
