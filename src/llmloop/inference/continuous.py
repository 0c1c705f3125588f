"""Continuous batching for the embedded engine's streams: transformers' ``ContinuousBatchingManager``.

The contract: ``ContinuousStreams`` takes token ids in and hands token ids out; it knows nothing of
chat templates, text, stop strings or versions (engine.py does those). One manager (a paged KV cache
and a generation thread of transformers') serves every stream of one base model and one sampling
mode: a request joins the running batch at the next decode step instead of waiting for the
streams before it to finish, which is what a lock around ``generate`` made them do. Measured on an
H100 (docs/benchmarks.md, issue 16, session 11; 0.5B-class model, 64 new tokens): at 64 clients 1.23x
transformers' manager driven directly and 1.26x static batched ``generate`` (p99 time to first token
0.22 s against 1.4 s), 1.21x and 1.06x at 8 clients, par at 1 client. That lead over the manager alone
needs the stream side to stay light (see ``stream``): the manager's thread is host-bound Python and
shares the GIL with every consumer.

Why it is limited to plain models (no LoRA adapter attached): the manager's thread runs the model's
forward for every request in its batch at once, and a PEFT model's active adapter is model state,
so two versions' streams cannot share a batch. Streams of adapter versions keep the engine's
serialised path.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

# Most managers (sampling modes) per base model: each holds its own paged KV cache.
MAX_MANAGERS = 3
# Share of the GPU memory free at creation that one manager's KV cache may take.
CACHE_MEMORY_SHARE = 0.3


def available(model: Any) -> bool:
    """Whether ``model`` can stream through a continuous-batching manager here."""
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return hasattr(model, "init_continuous_batching") and not hasattr(model, "peft_config") and (
        attn == "sdpa" or "flash" in str(attn))


class ContinuousStreams:
    """Streams of one plain (adapter-free) model, batched continuously; thread-safe."""

    def __init__(self, model: Any, eos_ids: list[int], pad_id: int | None) -> None:
        self.model = model
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        self._managers: dict[tuple, Any] = {}
        self._routes: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._closed = False

    def accepts(self, temperature: float, top_p: float) -> bool:
        key = _key(temperature, top_p)
        with self._lock:
            return not self._closed and (key in self._managers or len(self._managers) < MAX_MANAGERS)

    def _manager(self, temperature: float, top_p: float):  # noqa: ANN202
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        key = _key(temperature, top_p)
        with self._lock:
            if key in self._managers:
                return self._managers[key]
            sampled = temperature > 0
            config = GenerationConfig(
                do_sample=sampled, temperature=temperature if sampled else None,
                top_p=top_p if sampled and top_p < 1.0 else None, eos_token_id=self.eos_ids or None,
                pad_token_id=self.pad_id, max_new_tokens=128)
            manager = self.model.init_continuous_batching(
                generation_config=config,
                continuous_batching_config=ContinuousBatchingConfig(max_memory_percent=CACHE_MEMORY_SHARE))
            manager.start()
            threading.Thread(target=self._route, args=(manager,), name="llmloop-cb-router", daemon=True).start()
            self._managers[key] = manager
            return manager

    def _route(self, manager: Any) -> None:
        """Hand each output of ``manager`` to the queue of the stream that asked for it."""
        while not self._closed:
            out = manager.get_result(timeout=0.1)
            if out is None:
                if not manager.is_running():
                    return
                continue
            with self._lock:
                route = self._routes.get(out.request_id)
            if route is not None:
                route.put(out)

    def stream(self, input_ids: list[int], max_new_tokens: int, temperature: float, top_p: float) -> Iterator[tuple[list[int], bool]]:
        """Yield (all tokens generated so far, finished) as tokens arrive; closing it cancels the request.

        Under load a consumer falls behind the manager's decode steps: the outputs queued for it meanwhile
        are skipped to the newest (each holds every token so far), so one consumer wake-up and one
        detokenisation serve several steps, and the manager's thread (host-bound Python per step) does not
        wait on the GIL for work nobody reads."""
        manager = self._manager(temperature, top_p)
        with self._lock:
            self._counter += 1
            request_id = f"llmloop-{self._counter}"
            route: queue.Queue = queue.Queue()
            self._routes[request_id] = route
        manager.add_request(input_ids=list(input_ids), request_id=request_id, max_new_tokens=max_new_tokens,
                            streaming=True, eos_token_id=self.eos_ids or None)
        finished = False
        try:
            while not finished:
                try:
                    out = route.get(timeout=1.0)
                except queue.Empty:
                    if not manager.is_running():
                        raise RuntimeError("the continuous-batching generation thread stopped") from None
                    continue
                # Outputs are cumulative: a stream that fell behind takes only the newest.
                while not out.error and not out.is_finished():
                    try:
                        out = route.get_nowait()
                    except queue.Empty:
                        break
                if out.error:
                    raise RuntimeError(f"continuous batching failed for this request: {out.error}")
                finished = out.is_finished()
                yield out.generated_tokens, finished  # a copy of the request's tokens, ours to keep
        finally:
            if not finished:
                manager.cancel_request(request_id)
            with self._lock:
                self._routes.pop(request_id, None)

    def close(self) -> None:
        """Stop every manager (before the model changes: an adapter attached to it, an unload)."""
        with self._lock:
            self._closed = True
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.stop(block=True, timeout=10)
            manager.destroy()


def _key(temperature: float, top_p: float) -> tuple:
    return (False,) if temperature <= 0 else (True, float(temperature), float(top_p))
