"""REST API fixtures: the real gateway app (``create_app``, embedded engine, tiny model) with the
admin routes mounted, driven through FastAPI's TestClient (lifespan on), and one key per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llmloop.store import apikeys, registry
from llmloop.store.db import Database


@pytest.fixture(scope="session")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with random (non-zero) B matrices on the tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    path = tmp_path_factory.mktemp("api_adapter")
    get_peft_model(model, cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def engine():  # noqa: ANN201
    from llmloop.inference.embedded import EmbeddedEngine

    return EmbeddedEngine(device="cpu")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Api:
    db: Database
    admin: httpx.Client  # TestClient, admin key
    annotator: httpx.Client
    user: httpx.Client
    anonymous: httpx.Client


@pytest.fixture
def api(db: Database, tiny_model_dir: Path, adapter_dir: Path, engine) -> Iterator[Api]:  # noqa: ANN001
    """v1.0 (the tiny model) is production; v1.1 = v1.0 + a LoRA adapter is the candidate."""
    from fastapi.testclient import TestClient

    from llmloop.app import create_app

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapter_dir),
                      parent="v1.0")
    registry.set_alias(db, "production", "v1.0")
    registry.set_alias(db, "candidate", "v1.1")
    keys = {role: apikeys.create_key(db, name=f"test-{role}", role=role)[0] for role in apikeys.ROLES}
    app = create_app(db=db, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        def as_role(role: str | None) -> httpx.Client:
            c = TestClient(app, raise_server_exceptions=False)
            if role:
                c.headers["authorization"] = f"Bearer {keys[role]}"
            return c

        yield Api(db, as_role("admin"), as_role("annotator"), as_role("user"), client)
