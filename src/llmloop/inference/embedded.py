"""The embedded inference engine: transformers + peft in this process.

``EmbeddedEngine`` runs transformers + peft in this process: each base model is loaded
once and every version's LoRA adapter is attached to it by name, so switching versions per request
costs nothing but ``set_adapter``. On a CPU with a small base (``merge_adapters="auto"``) each adapter
version is instead served from its own copy of the base with the adapter merged in: one more copy of
a small model per version buys generation without the LoRA layers' extra matmuls (~25% faster there).
Generation is serialised by a lock (the active adapter is model state); ``chat`` requests with the
same sampling settings are generated as one batch by a batching thread: the requests of one version,
or, on a base shared by several adapter versions, the requests of all of them at once, each row
through its own adapter (PEFT's mixed-adapter batch, ``generate(adapter_names=...)``, as vLLM's
multi-LoRA serving does), so 8 adapters under load cost about what one does. On a GPU, streams
of versions without an adapter are batched continuously instead (inference/continuous.py: transformers'
paged-attention manager; a stream joins the running batch at the next decode step), which
``benchmarks/serve_gpu.py`` measured faster than the serialised path under concurrent clients.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from llmloop.inference.base import (
    Generation,
    SamplingParams,
    StreamResult,
    UnknownVersion,
    truncate_at_stop,
)
from llmloop.store.records import ModelVersion


@dataclass
class _Pending:
    """A ``chat`` request waiting to be generated in some caller's batch."""

    version: str
    messages: list[dict[str, Any]]
    n: int
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Generation] | None = None
    error: BaseException | None = None


@dataclass
class _Base:
    model: Any  # PeftModel once an adapter is attached, else the plain model
    tokenizer: Any
    adapters: set[str] = field(default_factory=set)


class EmbeddedEngine:
    """transformers + peft in-process; CPU or one GPU."""

    # "auto" merges adapters into per-version copies of bases up to this many parameters, on CPU only
    MERGE_AUTO_MAX_PARAMS = 1_000_000_000

    def __init__(self, device: str | None = None, dtype: str = "auto",
                 merge_adapters: Literal["auto", "always", "never"] = "auto", max_batch_rows: int = 64,
                 continuous_batching: Literal["auto", "on", "off"] = "auto") -> None:
        """``merge_adapters``: serve each adapter version from a merged copy of its base ("always"),
        attach every adapter to the one shared base ("never"), or merge on CPU for bases of at most
        ``MERGE_AUTO_MAX_PARAMS`` parameters ("auto"). ``max_batch_rows``: most sequences ``chat`` generates
        in one batch. ``continuous_batching``: stream versions without an adapter through a
        continuous-batching manager ("on"), never ("off"), or on a GPU only ("auto")."""
        import torch

        if merge_adapters not in ("auto", "always", "never"):
            raise ValueError(f"merge_adapters must be auto, always or never, not {merge_adapters!r}")
        if continuous_batching not in ("auto", "on", "off"):
            raise ValueError(f"continuous_batching must be auto, on or off, not {continuous_batching!r}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if (dtype == "auto" and self.device == "cuda") else torch.float32
        self.merge_adapters = merge_adapters
        self.continuous_batching = continuous_batching == "on" or (continuous_batching == "auto" and self.device == "cuda")
        self._streams: dict[str, Any] = {}  # base path -> ContinuousStreams (inference/continuous.py)
        self._bases: dict[str, _Base] = {}
        self._merged: dict[str, _Base] = {}  # version name -> its own base with the adapter merged in
        self._versions: dict[str, ModelVersion] = {}
        self._lock = threading.RLock()
        self._tokenizer_lock = threading.Lock()  # see _tokenize
        self._queue_ready = threading.Condition()
        self._queue: dict[tuple[str, SamplingParams], list[_Pending]] = {}  # (_batch_group, params) -> requests
        self._batcher: threading.Thread | None = None
        self.max_batch_rows = max_batch_rows
        # how much batching happened: chat requests served, and the generate calls that served them
        # (mixed_batches: those that served several adapter versions of one base at once)
        self.stats = {"chat_requests": 0, "chat_batches": 0, "mixed_batches": 0}

    # -- loading ---------------------------------------------------------------------------------
    def load(self, version: ModelVersion) -> None:
        """Make ``version`` servable; loading the same version twice is a no-op."""
        with self._lock:
            if version.name in self._versions:
                return
            base = self._bases.get(version.base_model) or self._load_base(version.base_model)
            if version.adapter_path and self._merges(base):
                self._merged[version.name] = self._merged_copy(base, version)
            elif version.adapter_path:
                self._close_streams(version.base_model)  # attaching an adapter changes the model under them
                self._attach(base, version)
            self._versions[version.name] = version

    def _merges(self, base: _Base) -> bool:
        if self.merge_adapters != "auto":
            return self.merge_adapters == "always"
        return self.device == "cpu" and not base.adapters and base.model.num_parameters() <= self.MERGE_AUTO_MAX_PARAMS

    def _merged_copy(self, base: _Base, version: ModelVersion) -> _Base:
        import copy

        from peft import PeftModel

        plain = copy.deepcopy(base.model)
        merged = PeftModel.from_pretrained(plain, version.adapter_path).merge_and_unload().eval()
        return _Base(model=merged, tokenizer=base.tokenizer)

    def _load_base(self, path: str) -> _Base:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        tok.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        base = _Base(model=model, tokenizer=tok)
        self._bases[path] = base
        return base

    def _attach(self, base: _Base, version: ModelVersion) -> None:
        from peft import PeftModel

        name = _adapter_name(version.name)
        if not base.adapters:
            base.model = PeftModel.from_pretrained(base.model, version.adapter_path, adapter_name=name)
        else:
            base.model.load_adapter(version.adapter_path, adapter_name=name)
        base.model.eval()
        base.adapters.add(name)

    def _close_streams(self, base_path: str) -> None:
        streams = self._streams.pop(base_path, None)
        if streams is not None:
            streams.close()

    def _continuous(self, name: str, params: SamplingParams):  # -> (base, ContinuousStreams) | None
        """The continuous-batching streams for ``name``, or None where the serialised path serves it: the
        setting is off, a seed asks for a repeatable run, the version has an adapter (model state), or
        the model's attention cannot page."""
        if not self.continuous_batching or params.seed is not None:
            return None
        with self._lock:
            v = self.version(name)
            if v.adapter_path or name in self._merged:
                return None
            base = self._bases[v.base_model]
            if base.adapters:
                return None
            streams = self._streams.get(v.base_model)
            if streams is None:
                from llmloop.inference import continuous

                if not continuous.available(base.model):
                    return None
                streams = continuous.ContinuousStreams(base.model, _eos_ids(base), base.tokenizer.pad_token_id)
                self._streams[v.base_model] = streams
            return (base, streams) if streams.accepts(params.temperature, params.top_p) else None

    def _stream_continuous(self, base: _Base, streams, messages: list[dict[str, Any]], params: SamplingParams,  # noqa: ANN001
                           result: StreamResult) -> Iterator[str]:
        tok = base.tokenizer
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        input_ids = self._tokenize(tok, text)["input_ids"]
        eos = set(_eos_ids(base))
        detok = _Detokenizer(tok)
        emitted, stopped, ids, ended = "", False, [], None
        for tokens, finished in streams.stream(input_ids, params.max_tokens, params.temperature, params.top_p):
            ended = next((j for j in range(len(ids), len(tokens)) if tokens[j] in eos), None)
            ids = tokens if ended is None else tokens[:ended]
            decoded = detok.text(ids, final=finished or ended is not None)
            if decoded is None:
                continue  # a character split across tokens: wait for the rest of it
            candidate, stopped = truncate_at_stop(decoded, params.stop)
            if candidate[len(emitted):] and candidate.startswith(emitted):
                yield candidate[len(emitted):]
                emitted = candidate
            if stopped or ended is not None:
                break  # closing the stream cancels the request
        result.prompt_tokens = len(input_ids)
        result.completion_tokens = len(ids) + (ended is not None)
        result.finish_reason = "stop" if (stopped or ended is not None) else "length"
        result.text = emitted

    def unload(self, name: str) -> None:
        with self._lock:
            version = self._versions.pop(name, None)
            if self._merged.pop(name, None) is not None or version is None or not version.adapter_path:
                return
            base = self._bases[version.base_model]
            adapter = _adapter_name(name)
            if adapter in base.adapters and len(base.adapters) > 1:
                base.model.delete_adapter(adapter)
                base.adapters.discard(adapter)

    def loaded(self) -> list[str]:
        return sorted(self._versions)

    def count_tokens(self, version: str, messages: list[dict[str, Any]]) -> int:
        """Tokens of the chat prompt ``messages`` would become (template included)."""
        tok = self._bases[self.version(version).base_model].tokenizer
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(self._tokenize(tok, text)["input_ids"])

    def version(self, name: str) -> ModelVersion:
        try:
            return self._versions[name]
        except KeyError:
            raise UnknownVersion(f"model version {name!r} is not loaded; loaded: {self.loaded()}") from None

    # -- generation ------------------------------------------------------------------------------
    def _select(self, name: str):  # -> (base, context manager)
        import contextlib

        v = self.version(name)
        if name in self._merged:
            return self._merged[name], contextlib.nullcontext()
        base = self._bases[v.base_model]
        if v.adapter_path:
            base.model.set_adapter(_adapter_name(name))
            return base, contextlib.nullcontext()
        if base.adapters:  # base-only version on a model that carries adapters
            return base, base.model.disable_adapter()
        return base, contextlib.nullcontext()

    def _batch_group(self, name: str) -> str:
        """Which queued requests one batch may serve together: those of one version, or of every version
        attached to the same shared base (they differ only in the adapter each row goes through). No lock:
        a request must queue while a batch generates (a version loaded or unloaded meanwhile is caught
        when its batch is served, see ``_serve``)."""
        v = self._versions.get(name)
        if v is None or name in self._merged:
            return "version:" + name  # an unknown one fails in its own batch; a merged copy is its own model
        return "base:" + v.base_model

    def _encode_chat(self, tok, conversations: list[list[dict[str, Any]]]):  # noqa: ANN001
        texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        return self._tokenize(tok, texts, return_tensors="pt", padding=True)

    def _tokenize(self, tok, text, **kwargs):  # noqa: ANN001, ANN202
        """Every encode goes through here, under ``_tokenizer_lock``: a fast tokenizer keeps its
        padding settings on the shared Rust object, so an unpadded encode on a request thread while
        the batcher encodes a padded batch made the latter fail ("Unable to create tensor …")."""
        with self._tokenizer_lock:
            return tok(text, add_special_tokens=False, **kwargs)

    def _generate(self, base: _Base, enc, params: SamplingParams, n: int = 1, streamer=None,  # noqa: ANN001
                  adapter_names: list[str] | None = None):
        import torch

        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_tokens,
            num_return_sequences=n,
            pad_token_id=base.tokenizer.pad_token_id,
            streamer=streamer,
        )
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        if adapter_names is not None:
            kwargs["adapter_names"] = adapter_names
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            return base.model.generate(**enc, **kwargs)

    def _decode(self, base: _Base, out, prompt_len: int, prompt_tokens: list[int], params: SamplingParams) -> list[Generation]:  # noqa: ANN001
        tok = base.tokenizer
        eos = set(_eos_ids(base))
        gens = []
        for i, seq in enumerate(out):
            new = seq[prompt_len:].tolist()
            ended = next((j for j, t in enumerate(new) if t in eos), None)
            ids = new if ended is None else new[:ended]
            text, stopped = truncate_at_stop(_clean(tok.decode(ids, skip_special_tokens=True)), params.stop)
            finish = "stop" if (ended is not None or stopped) else "length"
            gens.append(Generation(text=text, prompt_tokens=prompt_tokens[i], completion_tokens=len(ids) + (ended is not None), finish_reason=finish))
        return gens

    def chat(self, version: str, messages: list[dict[str, Any]], params: SamplingParams, n: int = 1) -> list[Generation]:
        """``n`` samples for one conversation.

        Concurrent calls with the same sampling settings for the same version, or for versions
        attached to one shared base, are generated together: a request joins a queue and one batching
        thread takes every queued request of the oldest kind (up to ``max_batch_rows`` sequences) and
        runs them as one left-padded batch, each row through its version's adapter, while new ones
        queue up. No request waits for a timer. A request with a ``seed`` runs alone, so that it repeats.
        """
        # Greedy decoding has one answer (and transformers refuses n > 1 without sampling).
        k = n if params.temperature > 0 else 1
        if params.seed is not None:
            with self._lock:
                gens = self._chat_versions([_Pending(version, messages, k)], params)[0]
            return gens if k == n else gens * n
        pending = _Pending(version, messages, k)
        key = (self._batch_group(version), params)
        with self._queue_ready:
            self._queue.setdefault(key, []).append(pending)
            if self._batcher is None or not self._batcher.is_alive():
                self._batcher = threading.Thread(target=self._batch_loop, name="llmloop-batcher", daemon=True)
                self._batcher.start()
            self._queue_ready.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result if k == n else pending.result * n

    def _batch_loop(self) -> None:
        """The batching thread: serve the queue, oldest kind first, for as long as the process lives.

        (One thread takes the batches. When every caller took the engine's lock for its own request
        instead, callers whose requests had already been served still queued for the lock, and each
        then served only the one request that had arrived meanwhile: batches of one.)"""
        while True:
            with self._queue_ready:
                while not self._queue:
                    self._queue_ready.wait()
                key = next(iter(self._queue))  # dicts keep insertion order: the kind waiting longest
                queued = self._queue.pop(key)
                batch, rows = [], 0
                while queued and (not batch or rows + queued[0].n <= self.max_batch_rows):
                    rows += queued[0].n
                    batch.append(queued.pop(0))
                if queued:  # the rest waits for the next batch, behind the other kinds
                    self._queue[key] = queued
            with self._lock:
                self.stats["chat_requests"] += len(batch)
                try:
                    self._serve(batch, key[1])
                finally:
                    for p in batch:
                        p.done.set()

    def _serve(self, batch: list[_Pending], params: SamplingParams) -> None:
        """Answer ``batch`` (results or the error on each request); the caller holds the lock. A batch of
        several versions that fails (one was unloaded meanwhile, say) is served again one version at a
        time, so that an error reaches only the callers of the version it belongs to."""
        self.stats["chat_batches"] += 1
        try:
            results = self._chat_versions(batch, params)
        except BaseException as e:  # noqa: BLE001 - handed to each waiting caller
            versions = list(dict.fromkeys(p.version for p in batch))
            if len(versions) == 1:
                for p in batch:
                    p.error = e
                return
            for v in versions:
                self._serve([p for p in batch if p.version == v], params)
            return
        for p, gens in zip(batch, results, strict=True):
            p.result = gens

    def _chat_versions(self, batch: list[_Pending], params: SamplingParams) -> list[list[Generation]]:
        """``n`` samples for each request of ``batch``, as one left-padded batch; the caller holds the lock.
        Requests of several versions (``_batch_group``: adapters on one shared base) go through PEFT's
        mixed-adapter batch, each row through its own version's adapter."""
        import contextlib

        names = [p.version for p in batch for _ in range(p.n)]
        adapter_names = None
        if len(set(names)) == 1:
            base, ctx = self._select(names[0])
        else:
            base, ctx = self._bases[self.version(names[0]).base_model], contextlib.nullcontext()
            if base.adapters:  # else every version serves the plain base
                adapter_names = [_adapter_name(v) if self.version(v).adapter_path else "__base__" for v in names]
                self.stats["mixed_batches"] += 1
        enc = self._encode_chat(base.tokenizer, [p.messages for p in batch for _ in range(p.n)])
        with ctx:
            out = self._generate(base, enc, params, adapter_names=adapter_names)
        gens = self._decode(base, out, enc["input_ids"].shape[1], [int(m.sum()) for m in enc["attention_mask"]], params)
        grouped, i = [], 0
        for p in batch:
            grouped.append(gens[i : i + p.n])
            i += p.n
        return grouped

    def chat_batch(self, version: str, conversations: list[list[dict[str, Any]]], params: SamplingParams) -> list[Generation]:
        """One sample for each conversation, generated as one left-padded batch."""
        with self._lock:
            return [gens[0] for gens in self._chat_versions([_Pending(version, c, 1) for c in conversations], params)]

    def chat_stream(self, version: str, messages: list[dict[str, Any]], params: SamplingParams, result: StreamResult) -> Iterator[str]:
        """Yield text pieces as they are generated; ``result`` holds counts once exhausted.

        Continuously batched (see ``_continuous``), streams run side by side. Otherwise the generator
        holds the engine's (re-entrant, thread-owned) lock from its first piece to its end, so consume
        it start to end on one thread.
        """
        from transformers import TextIteratorStreamer

        continuous = self._continuous(version, params)
        if continuous is not None:
            yield from self._stream_continuous(*continuous, messages, params, result)
            return

        with self._lock:
            base, ctx = self._select(version)
            enc = self._encode_chat(base.tokenizer, [messages])
            streamer = TextIteratorStreamer(base.tokenizer, skip_prompt=True, skip_special_tokens=True)
            outcome: dict[str, Any] = {}

            def work() -> None:
                try:
                    with ctx:
                        outcome["out"] = self._generate(base, enc, params, streamer=streamer)
                except BaseException as e:  # surfaced to the consumer below
                    outcome["error"] = e
                    streamer.end()

            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            emitted = ""
            stopped = False
            exhausted = False
            try:
                for piece in streamer:
                    if stopped:
                        continue  # drain so that generation finishes
                    candidate, hit = truncate_at_stop(emitted + _clean(piece), params.stop)
                    if candidate[len(emitted):]:
                        yield candidate[len(emitted):]
                    emitted = candidate
                    stopped = hit
                exhausted = True
            finally:
                if not exhausted:
                    # Closed early (the consumer went away): let generation finish before the lock is
                    # released, or it would go on using the model while another request sets adapters.
                    for _ in streamer:
                        pass
                thread.join()
            if "error" in outcome:
                raise outcome["error"]
            gen = self._decode(base, outcome["out"], enc["input_ids"].shape[1], [int(enc["attention_mask"][0].sum())], params)[0]
            result.prompt_tokens = gen.prompt_tokens
            result.completion_tokens = gen.completion_tokens
            result.finish_reason = "stop" if stopped else gen.finish_reason
            result.text = emitted

    def complete(self, version: str, prompt: str, params: SamplingParams) -> Generation:
        """Plain text continuation (completion models)."""
        with self._lock:
            base, ctx = self._select(version)
            enc = self._tokenize(base.tokenizer, [prompt], return_tensors="pt")
            with ctx:
                out = self._generate(base, enc, params)
            plen = enc["input_ids"].shape[1]
            return self._decode(base, out, plen, [plen], params)[0]


class _Detokenizer:
    """The text of a growing list of generated ids, as ``tokenizer.decode(ids, skip_special_tokens=True)``
    gives it, without decoding every id again on every step: a fast tokenizer's ``DecodeStream`` (the
    tokenizers library's incremental decoder) takes the new ids only. The last text (``final``) is one
    full decode, so a stream ends with exactly what the serialised path returns. Tokenizers that clean
    up spaces after decoding (a pass over the whole text) or are not fast decode in full each time.
    ``text`` returns None while the newest ids end inside a character."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.backend = None if getattr(tokenizer, "clean_up_tokenization_spaces", False) else backend
        if self.backend is not None:
            from tokenizers.decoders import DecodeStream

            self.stream = DecodeStream(skip_special_tokens=True)
        self.fed, self.decoded = 0, ""

    def text(self, ids: list[int], final: bool) -> str | None:
        if final or self.backend is None:
            decoded = _clean(self.tokenizer.decode(ids, skip_special_tokens=True))
            return None if not final and decoded.endswith("\ufffd") else decoded
        piece = None
        for token in ids[self.fed:]:
            piece = self.stream.step(self.backend, token)
            if piece:
                self.decoded += _clean(piece)
        self.fed = len(ids)
        return self.decoded if piece is not None else None


def _clean(text: str) -> str:
    # A byte-level model can emit NUL; no client wants it and PostgreSQL text cannot hold it.
    return text.replace("\x00", "")


def _adapter_name(version: str) -> str:
    # peft adapter names become module attribute keys: no dots allowed
    return "v_" + version.replace(".", "_").replace("-", "_")


def _eos_ids(base: _Base) -> list[int]:
    eos = base.model.generation_config.eos_token_id
    ids = eos if isinstance(eos, list) else [eos]
    if base.tokenizer.eos_token_id is not None:
        ids = [*ids, base.tokenizer.eos_token_id]
    return [i for i in ids if i is not None]
