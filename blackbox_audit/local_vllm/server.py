"""Start, watch and stop local vLLM servers; never signal a process that is not ours."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blackbox_audit.local_vllm.install import is_set_up
from blackbox_audit.local_vllm.models import (
    DEFAULT_KEYS,
    MODELS,
    SERVER_ENV,
    SERVER_MODULE,
    Log,
    home,
    log_file,
    model_dir,
    pid_file,
    resolve,
    step,
    venv_python,
)
from providers.http import health_ok

STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class ServerStatus:
    """What `status` reports for one model; pid only for a live server we started."""

    key: str
    served_name: str
    base_url: str
    pid: int | None
    healthy: bool
    set_up: bool


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
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _read_pid(key: str) -> int | None:
    try:
        return int(pid_file(key).read_text().strip())
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
    pid_file(key).write_text(f"{process.pid}\n" if port is None else f"{process.pid} {port}\n")
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
                pid_file(key).unlink(missing_ok=True)
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
    models = resolve(keys)
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
    for model in resolve(keys):
        pid_path = pid_file(model.key)
        pid = _read_pid(model.key)
        if pid is None:
            if pid_path.exists():
                log(f"[local-vllm] {model.key}: unreadable pid file removed")
            pid_path.unlink(missing_ok=True)
            continue
        if not _is_our_server(pid, model.port):
            log(f"[local-vllm] {model.key}: pid {pid} is not our server any more; left alone")
        else:
            with step(log, f"{model.key}: stop pid {pid}"):
                _terminate_group(pid)
        pid_path.unlink(missing_ok=True)


def folder_pid(key: str) -> int | None:
    """The pid of the `start_folder` server `key`, if it still runs as our server on its port."""
    try:
        pid, port = (int(x) for x in pid_file(key).read_text().split())
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
        with step(log, f"{key}: stop pid {pid}"):
            _terminate_group(pid)
    pid_file(key).unlink(missing_ok=True)


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
