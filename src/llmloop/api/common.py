"""What every admin route shares: the caller's role, the gateway's objects, one blocking call (off
the event loop), and uploads saved to a temp file. Errors: the library's ``LlmloopError``s reach the
app's one handler (``serve.http_errors.http_error``: status and OpenAI-shaped body from the error's
class); a bare ``ValueError``/``LookupError``/``KeyError`` is a bug and answers 500.

Roles come from the gateway's own ``AuthService`` (``serve/auth.py``), so a key means the same thing
on ``/v1/…`` and ``/api/v1/…``: ``annotator`` reads everything and curates data and human reviews,
``admin`` also trains, evaluates, operates on models and changes the rollout. With auth off (no key
in the store) these routes answer 401: nobody is an admin without a key.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, Request, UploadFile
from pydantic import ValidationError

from llmloop.errors import LlmloopError
from llmloop.serve.auth import Principal
from llmloop.serve.http_errors import ServingError

if TYPE_CHECKING:
    from llmloop.api.tasks import TaskRunner
    from llmloop.serve.gateway import Gateway

T = TypeVar("T")


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def tasks(request: Request) -> TaskRunner:
    return request.app.state.admin_tasks


def _caller(role: str) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        return gateway(request).auth.principal(request.headers.get("authorization"), role)

    dependency.__name__ = f"needs_{role}"
    return dependency


User = Depends(_caller("user"))  # any valid key (and anyone while auth is off): /whoami only
Annotator = Depends(_caller("annotator"))
Admin = Depends(_caller("admin"))


def actor(principal: Principal) -> str:
    return principal.user_id or principal.role


def as_error(e: BaseException) -> LlmloopError | None:
    """``e`` as the error the caller gets (``serve.http_errors.http_error`` renders it): an ``LlmloopError``
    as it is; a request config that fails validation (422 invalid_config) and an optional package this
    gateway was installed without (501 missing_dependency) translated; None for anything else, a bug
    (answered 500 with its traceback logged, never a 4xx that blames the request)."""
    if isinstance(e, LlmloopError):
        return e
    if isinstance(e, ValidationError):
        parts = [f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}" for err in e.errors()]
        return ServingError("; ".join(parts), status=422, code="invalid_config")
    if isinstance(e, ModuleNotFoundError):  # an optional dependency this gateway was installed without
        extra = {"scipy": "eval", "sacrebleu": "eval", "rouge_score": "eval", "openpyxl": "eval",
                 "datasketch": "data", "sentence_transformers": "data", "gguf": "models"}.get(
            (e.name or "").split(".")[0], "eval")
        return ServingError(f"the gateway lacks the Python package {e.name!r} for this: install it where the gateway "
                            f"runs (pip install \"llmloop[{extra}]\") and restart it", status=501, type="server_error",
                            code="missing_dependency")
    return None


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn``; a config that fails validation or a missing optional package leaves as a
    ``ServingError`` (``as_error``); llmloop's own errors and bugs leave as they are."""
    try:
        return fn(*args, **kwargs)
    except LlmloopError:
        raise
    except Exception as e:
        mapped = as_error(e)
        if mapped is None:
            raise
        raise mapped from e


async def blocking(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking library call on the gateway's store lane (never on the event loop)."""
    gw = gateway(request)
    return await gw.lanes.store(functools.partial(guarded, fn, *args, **kwargs))


@contextmanager
def saved_upload(upload: UploadFile) -> Iterator[Path]:
    """The uploaded file on disk under its own name (so errors name it), removed afterwards."""
    name = Path(upload.filename or "upload.jsonl").name or "upload.jsonl"
    folder = Path(tempfile.mkdtemp(prefix="llmloop-upload-"))
    path = folder / name
    try:
        with path.open("wb") as f:
            shutil.copyfileobj(upload.file, f)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def plain(value: Any) -> Any:
    """A library result (frozen dataclasses, paths, datetimes) as JSON-ready data."""
    from fastapi.encoders import jsonable_encoder

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return jsonable_encoder(value, custom_encoder={Path: str})
