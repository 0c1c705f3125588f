"""Helpers shared by the REST API tests."""

from __future__ import annotations

import httpx


def error(r: httpx.Response, status: int) -> dict:
    """The OpenAI-shaped error body of ``r``, checked."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    return body["error"]


def wait_task(client: httpx.Client, task_id: str, timeout: float = 300) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        task = r.json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still {task['status']} after {timeout} s")
