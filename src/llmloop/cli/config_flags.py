"""Typer options generated from a pydantic config's fields, so a command's flags are the config.

Each field ``some_name`` becomes ``--some-name`` with the field's type (``X | None`` optional,
``Literal`` a choice, ``list[X]`` a repeatable flag, ``bool`` an on/off pair ``--x/--no-x``), its
default, its description as the help and an env var ``<PREFIX><SOME_NAME>``. A field's
``json_schema_extra`` may keep older spellings working: ``cli_aliases`` (more flags for the same
field) and ``env`` (more env vars, read after the generated one). Values are not validated here:
the command builds the config from them, so a flag passes the same checks as the Python API.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def flag_errors(error: ValidationError, prefix: str = "", flags: dict[str, str] | None = None) -> list[str]:
    """Each validation error of a config built from flags, as ``--flag: message`` (the flag that fixes it);
    ``prefix`` is the flags' common prefix (``judge_`` for ``--judge-…``); ``flags`` names the flag of a
    field whose flag is spelled otherwise (``{"timeout_s": "--timeout"}``)."""
    out = []
    for x in error.errors():
        field = "_".join(map(str, x["loc"]))
        out.append(f"{(flags or {}).get(field) or flag_name(prefix + field)}: {x['msg']}")
    return out


def _extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def flags(name: str, field: FieldInfo) -> list[str]:
    """Every spelling of the field's flag, the generated one first."""
    return [flag_name(name), *_extra(field).get("cli_aliases", [])]


def envvars(name: str, field: FieldInfo, prefix: str) -> list[str]:
    """The env vars the field is read from, in the order they are tried."""
    return [prefix + name.upper(), *_extra(field).get("env", [])]


def _without_none(annotation: Any) -> Any:
    """``X`` of ``X | None``; any other annotation as it is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _option(name: str, field: FieldInfo, prefix: str) -> inspect.Parameter:
    annotation = field.annotation
    base = _without_none(annotation)
    default = ... if field.is_required() else field.get_default(call_default_factory=True)  # ...: a required option
    decls = flags(name, field)
    help_text = field.description or ""
    if base is bool:
        decls = [f"{decls[0]}/--no-{decls[0][2:]}", *decls[1:]]
    elif typing.get_origin(base) is list:
        help_text += " (repeat the flag for more)"
    env = envvars(name, field, prefix)
    option = typer.Option(default, *decls, help=help_text, envvar=env if len(env) > 1 else env[0], show_envvar=True,
                          show_default=default not in (None, [], ...))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def with_config_flags(model: type[BaseModel], *, envvar_prefix: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give ``func(ctx, **values)`` one typer option per field of ``model``; typer reads the options from
    the function's signature, and calls it with every field's value (the default where none was given)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
        params += [_option(name, field, envvar_prefix) for name, field in model.model_fields.items()]
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        func.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return func

    return decorate
