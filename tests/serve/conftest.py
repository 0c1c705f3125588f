"""Serving fixtures: a tiny base model with two real LoRA adapters, registered as versions, and a
real uvicorn server on a free port.

Versions (same names and paths in every test, so one engine serves them all):
``v1.0`` = base + adapter A (production) · ``v1.1`` = base + adapter B (candidate) ·
``c1.0`` = the base alone, as a completion model.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmloop.store import registry
from llmloop.store.db import Database


@pytest.fixture(scope="session")
def adapter_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two LoRA adapters with random (non-zero) B matrices, so each version answers differently."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for seed, name in enumerate(["a", "b"], start=1):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        cfg = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
        path = tmp_path_factory.mktemp(f"adapter_{name}")
        get_peft_model(model, cfg).save_pretrained(path)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def engine():
    """One embedded engine for the session: loading is per version name, and names map to the
    same files in every test."""
    from llmloop.inference.embedded import EmbeddedEngine

    return EmbeddedEngine(device="cpu")


def register_versions(db: Database, tiny_model_dir: Path, adapter_dirs: dict[str, Path], *, candidate: bool = True) -> None:
    base = str(tiny_model_dir)
    registry.register(db, name="v1.0", kind="chat", base_model=base, adapter_path=str(adapter_dirs["a"]))
    registry.register(db, name="v1.1", kind="chat", base_model=base, adapter_path=str(adapter_dirs["b"]), parent="v1.0")
    registry.register(db, name="c1.0", kind="completion", base_model=base)
    registry.set_alias(db, "production", "v1.0")
    if candidate:
        registry.set_alias(db, "candidate", "v1.1")


@pytest.fixture
def versions(db: Database, tiny_model_dir: Path, adapter_dirs: dict[str, Path]) -> Database:
    register_versions(db, tiny_model_dir, adapter_dirs)
    return db


@contextlib.contextmanager
def running(app) -> Iterator[str]:  # noqa: ANN001
    """Run ``app`` under a real uvicorn server in a thread; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def server(versions: Database, engine) -> Iterator[str]:  # noqa: ANN001
    """The gateway (production v1.0, candidate v1.1, 50/50 split for model='llmloop') on a free port."""
    from llmloop.app import create_app
    from llmloop.serve.routing import RoutingConfig

    app = create_app(db=versions, engine=engine, routing=RoutingConfig(weights={"production": 1, "candidate": 1}))
    with running(app) as url:
        yield url


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny model runs fastest on one intra-op thread: on a busy 2-core machine two OpenMP threads
    wait on each other at every matmul (milliseconds each, for microseconds of work)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def serve_app():  # noqa: ANN201
    """``with serve_app(app) as url:`` runs an app under real uvicorn (for tests that build their own)."""
    return running


@pytest.fixture
def register(tiny_model_dir: Path, adapter_dirs: dict[str, Path]):  # noqa: ANN201
    """``register(db, candidate=True)`` registers v1.0 / v1.1 / c1.0 and the aliases."""
    return lambda db, candidate=True: register_versions(db, tiny_model_dir, adapter_dirs, candidate=candidate)
