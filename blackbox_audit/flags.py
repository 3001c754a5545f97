"""The `audit` command's flags, generated from `AuditConfig`'s fields: names, types, choices,
help and defaults are read off the fields, so the CLI and the Python API cannot drift apart.

A top-level field `max_new_tokens` is `--max-new-tokens`; an endpoint field is
`--target-<name>` / `--reference-<name>` (`flag` in its metadata renames it); a field that can
be switched off has a second flag (`off_flag`: `--no-cache`, `--no-degeneracy-filter`); a bool
whose default is True has only that flag. Secrets have flags but no file entry.
"""

from __future__ import annotations

import argparse
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from blackbox_audit.config import ROLES, AuditConfig, EndpointConfig, api_key_variables


@dataclass(frozen=True)
class FieldFlag:
    """One field's flag: `location` is its dotted place in AuditConfig ("target.max_concurrency")."""

    location: str
    flag: str
    dest: str
    off_flag: str | None = None
    off_dest: str | None = None
    off_value: Any = None


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def _base_type(annotation: Any) -> Any:
    """`int | None` -> int; Literal and plain types pass through."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return ""
    default = info.get_default(call_default_factory=True)
    if default is None:
        return ""
    if isinstance(default, bool):
        return ""
    if isinstance(default, str):
        return f" (default: {default!r})" if default == "" or " " in default else f" (default: {default})"
    return f" (default: {default})"


def _add(group: argparse._ActionsContainer, name: str, location: str, info: FieldInfo, help_text: str) -> FieldFlag:
    extra = _extra(info)
    base = _base_type(info.annotation)
    dest = location.replace(".", "__")
    flag = f"--{name}"
    if base is bool:
        off = extra.get("off_flag")
        if info.get_default() is True and off:
            group.add_argument(
                f"--{off}", dest=dest, action="store_const", const=False, help=extra.get("off_help", help_text)
            )
            return FieldFlag(location, f"--{off}", dest)
        group.add_argument(flag, dest=dest, action="store_const", const=True, help=help_text)
        return FieldFlag(location, flag, dest)
    kwargs: dict[str, Any] = {"dest": dest, "help": help_text + _default_text(info)}
    if get_origin(base) is Literal:
        kwargs["choices"] = get_args(base)
        extra.setdefault("metavar", "|".join(get_args(base)))
    elif base in (int, float):
        kwargs["type"] = base
    elif base is Path:
        kwargs["type"] = str
    kwargs["metavar"] = extra.get("metavar", location.rpartition(".")[2].upper())
    off = extra.get("off_flag")
    if off:
        exclusive = group.add_mutually_exclusive_group()
        exclusive.add_argument(flag, **kwargs)
        off_dest = f"{dest}__off"
        exclusive.add_argument(f"--{off}", dest=off_dest, action="store_true", help=extra.get("off_help"))
        return FieldFlag(location, flag, dest, f"--{off}", off_dest, None)
    group.add_argument(flag, **kwargs)
    return FieldFlag(location, flag, dest)


def add_audit_flags(parser: argparse.ArgumentParser) -> list[FieldFlag]:
    """Every AuditConfig field as a flag, endpoint fields grouped per role; all default to
    None (not given), so that a config file's values show through."""
    flags: list[FieldFlag] = []
    for role in ROLES:
        flags += add_endpoint_flags(parser.add_argument_group(role), role)
    audit = parser.add_argument_group("audit")
    cache_dir = None
    for name, info in AuditConfig.model_fields.items():
        if _is_model(info.annotation):
            continue
        target = audit
        if name in ("cache_dir", "use_cache"):
            cache_dir = cache_dir or audit.add_mutually_exclusive_group()
            target = cache_dir
        flags.append(_add(target, name.replace("_", "-"), name, info, info.description or ""))
    return flags


def add_endpoint_flags(
    group: argparse._ActionsContainer, role: str = "", only: tuple[str, ...] | None = None
) -> list[FieldFlag]:
    """EndpointConfig's fields as `--<role>-<name>` (`--<name>` without a role), or only some."""
    flags = []
    for name, info in EndpointConfig.model_fields.items():
        extra = _extra(info)
        if extra.get("internal") or (only is not None and name not in only):
            continue
        variables = ", ".join(f"${v}" for v in api_key_variables(role, ""))
        help_text = (info.description or "").format(
            role=role or "endpoint", key_variables=f"{variables}, or a service's own for its host ($OPENAI_API_KEY)"
        )
        flag_name = extra.get("flag", name).replace("_", "-")
        flags.append(
            _add(
                group, f"{role}-{flag_name}" if role else flag_name, f"{role}.{name}" if role else name, info, help_text
            )
        )
    return flags


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def overrides_from(args: argparse.Namespace, flags: list[FieldFlag]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings the flags gave (nested per role), and every field's flag, for errors."""
    overrides: dict[str, Any] = {}
    names: dict[str, str] = {}
    for flag in flags:
        names[flag.location] = flag.flag
        value = getattr(args, flag.dest, None)
        if flag.off_dest is not None and getattr(args, flag.off_dest, False):
            value = flag.off_value
            given = True
        else:
            given = value is not None
        if not given:
            continue
        role, _, name = flag.location.rpartition(".")
        (overrides.setdefault(role, {}) if role else overrides)[name] = value
    return overrides, names
