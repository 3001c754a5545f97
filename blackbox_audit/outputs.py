"""The audit's output folder, written as a set: a reader of --out finds the previous complete
set of files or the new complete set, never a mix and never a partial file.

Everything is written into a staging folder beside --out (same file system), flushed, and then
swapped with --out in one step (Linux `renameat2(RENAME_EXCHANGE)`); the old set is removed
afterwards. Where the exchange is not supported, two renames leave a moment in which --out is
absent (never mixed). Problems with --out are found before any request (`prepare`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blackbox_audit.null import null_line
from blackbox_audit.report import render_markdown
from blackbox_audit.report_html import RunInfo, iter_html
from providers.atomic import fsync_directory

if TYPE_CHECKING:
    from blackbox_audit.config import AuditConfig
    from blackbox_audit.records import CompletionResult

OUTPUT_FILES = ("results.jsonl", "report.md", "report.html", "manifest.json", "null.jsonl")
"""What an audit writes; null.jsonl only with a null target."""
_STAGING = ".{name}.staging-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputError(Exception):
    """--out cannot take the audit's files; the message names the folder and the fix."""

    usage = False  # True when the folder named is wrong (exit 2), False when the disk failed (exit 1)


class OutputSet:
    """`prepare` (before any request) -> write files into `staging` -> `commit` (or `abort`)."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.staging: Path | None = None

    def prepare(self) -> Path:
        """Check --out and make the staging folder; any file-system problem surfaces here."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise _usage(f"--out {out} is a file, not a folder: give a folder name")
        if out.is_dir():
            foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_FILES)
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise _usage(
                    f"--out {out} holds files that are not an audit's ({shown}); an audit replaces its folder"
                    " as a whole: give a new or empty folder"
                )
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            for leftover in out.parent.glob(_STAGING.format(name=out.name) + "*"):
                shutil.rmtree(leftover, ignore_errors=True)  # a killed run's
            self.staging = Path(tempfile.mkdtemp(prefix=_STAGING.format(name=out.name), dir=out.parent))
            umask = os.umask(0)
            os.umask(umask)
            self.staging.chmod(0o777 & ~umask)  # an ordinary folder, as mkdir makes it (mkdtemp's is private)
        except OSError as exc:
            raise _disk(exc, out) from None
        return self.staging

    def write(self, name: str, parts: Iterable[str | bytes]) -> Path:
        assert self.staging is not None, "prepare() first"
        path = self.staging / name
        try:
            with path.open("wb") as file:
                for part in parts:
                    file.write(part.encode("utf-8") if isinstance(part, str) else part)
        except OSError as exc:
            raise _disk(exc, self.out) from None
        return path

    def write_json(self, name: str, data: Any) -> Path:
        return self.write(name, [json.dumps(data, indent=2, sort_keys=True) + "\n"])

    def commit(self) -> Path:
        """Flush every staged file, then swap the staging folder in as --out."""
        staging = self.staging
        assert staging is not None, "prepare() first"
        try:
            for path in staging.iterdir():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_directory(staging)
            if self.out.is_dir():
                _exchange(staging, self.out)
                shutil.rmtree(staging)  # now the previous set
            else:
                os.rename(staging, self.out)
            fsync_directory(self.out.parent)
        except OSError as exc:
            self.abort()
            raise _disk(exc, self.out) from None
        self.staging = None
        return self.out

    def abort(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def write_reports(
    output: OutputSet, ranked: Sequence[CompletionResult], manifest: dict[str, Any], config: AuditConfig
) -> None:
    """The reports and the manifest beside results.jsonl (written by the spool); the HTML is streamed."""
    from blackbox_audit.evaluate import load_organism

    spec = load_organism(config.organism) if config.organism is not None else None
    output.write(
        "report.md",
        [
            render_markdown(
                ranked,
                title=report_title(manifest),
                summary=summary_of(manifest),
                score=config.score,
                top_k=min(config.top_k, 100),
            )
        ],
    )
    output.write(
        "report.html",
        iter_html(
            ranked, title=report_title(manifest), run=RunInfo.from_manifest(manifest), top_k=config.top_k, spec=spec
        ),
    )
    output.write_json("manifest.json", manifest)


def report_title(manifest: dict[str, Any]) -> str:
    config = manifest["config"]
    return f"blackbox-audit: {config['target']['model']} vs {config['reference']['model']}"


def summary_of(manifest: dict[str, Any]) -> dict[str, str]:
    """report.md's header lines."""
    config = manifest["config"]
    summary = {
        "target": f"{config['target']['model']} @ {config['target']['base_url']}",
        "reference": f"{config['reference']['model']} @ {config['reference']['base_url']}",
        "framing": config["framing"],
        "ranking": config["score"] + demotion_note(config),
        "completions": str(manifest["counts"]["prefills"]),
    }
    if "null" in manifest:
        summary["calibrated null"] = null_line(manifest["null"])
    budget = manifest.get("budget")
    if budget and budget["reached"]:
        summary["budget"] = (
            f"stopped at --max-target-tokens {budget['max_target_tokens']}: {budget['prefills_done']} of"
            f" {budget['prefills_total']} prefills audited"
        )
    sentinel, served = manifest.get("sentinel") or {}, manifest["target"].get("served") or {}
    if sentinel.get("moved") or served.get("changed"):
        summary["model change"] = "the target's model changed during the audit (manifest.json: sentinel, target.served)"
    return summary


def demotion_note(config: dict[str, Any]) -> str:
    """How degenerate completions were treated, as the report's header says it."""
    threshold = config["degeneracy_threshold"]
    if threshold is None:
        return ""
    if config.get("demote_all_loops"):
        return f" (degenerate >= {threshold} demoted)"
    return (
        f" (degenerate >= {threshold} demoted when their first occurrence carries less than the median gap of the"
        " completions that do not repeat their text)"
    )


def _exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(b))
    # No atomic exchange here: --out is briefly absent between the renames, never mixed.
    old = b.with_name(b.name + ".old")
    os.rename(b, old)
    os.rename(a, b)
    os.rename(old, a)


def _usage(message: str) -> OutputError:
    error = OutputError(message)
    error.usage = True
    return error


def _disk(exc: OSError, out: Path) -> OutputError:
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return OutputError(f"cannot write the outputs to {out}: {reason}{where}; the folder keeps its previous files")
