"""The second round of bad inputs and faults, through the real CLI: secrets in config files and
URLs, an output folder that is only ever a whole set, file-system faults, hopeless errors that
fail fast, an honest --dry-run, and the smaller refusals. docs/reliability.md lists them.

Audits run against the recorded fault servers (tests/replay/faultserver.py) or the instant
fake vLLM (bench/fakeserver.py, the `fake_server` fixture); file-system faults use real
mounts (a tmpfs of a few KB, a read-only bind mount) where the test runs as root.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from blackbox_audit import outputs as outputs_module
from blackbox_audit.cli import main as cli_main
from blackbox_audit.spool import RecordSpool
from tests.replay.faultserver import FaultServer, Rule, error_status
from tests.replay.test_faults import COMPLETIONS, RAW, SMOLLM2, _audit_args, _cli, _subprocess_env

ROOT = Path(__file__).resolve().parents[2]
FAKE_MODEL = "fake-model"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def fake_audit(url: str, out: Path, *extra: str, reference_url: str | None = None) -> list[str]:
    return [
        "audit",
        "--target-base-url", url, "--target-model", FAKE_MODEL,
        "--reference-base-url", reference_url or url, "--reference-model", FAKE_MODEL,
        "--limit", "6", "--max-new-tokens", "8", "--out", str(out), *extra,
    ]  # fmt: skip


def requests_to(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/stats").json()["requests"] - 1  # this one too


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"one line, no traceback: {err!r}"
    return lines[0]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@contextmanager
def mounted(kind: str, where: Path, size_kib: int = 0) -> Iterator[Path]:
    """A real mount: a tmpfs of `size_kib`, or a read-only bind of an empty folder."""
    if os.geteuid() != 0:
        pytest.skip(reason="mounting a tmpfs or a read-only bind needs root (CI runs as root)")
    where.mkdir(parents=True, exist_ok=True)
    if kind == "tmpfs":
        command = [["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)]]
    else:
        source = where.with_name(where.name + "-source")
        source.mkdir(exist_ok=True)
        command = [["mount", "--bind", str(source), str(where)], ["mount", "-o", "remount,bind,ro", str(where)]]
    for step in command:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", str(where)], capture_output=True)
            pytest.skip(reason=f"this machine refuses the mount: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


# -- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('api_key = "sk-file-secret"\n', ("--target-api-key", "--reference-api-key", "$BLACKBOX_AUDIT_API_KEY")),
        (
            '[target]\napi_key = "sk-file-secret"\n',
            ("[target] api_key", "--target-api-key", "$BLACKBOX_AUDIT_TARGET_API_KEY"),
        ),
        (
            '[reference]\nbase_url = "http://me:sk-file-secret@127.0.0.1:9/v1"\n',
            ("[reference] base_url", "--reference-api-key", "$BLACKBOX_AUDIT_REFERENCE_API_KEY"),
        ),
    ],
    ids=["top-level", "target-table", "url-userinfo"],
)
def test_a_key_in_a_config_file_is_refused(text, names, fake_server, tmp_path, capsys):
    path = tmp_path / "audit.toml"
    path.write_text(text)
    code = cli_main([*fake_audit(fake_server, tmp_path / "out"), "--config", str(path)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "keys are not read from config files" in line
    for name in names:
        assert name in line
    assert "sk-file-secret" not in line
    assert requests_to(fake_server) == 0 and not (tmp_path / "out").exists()


def test_secrets_by_flag_variable_and_url_are_sent_and_never_shown(servers, tmp_path, capsys, monkeypatch):
    """The secrets audit: keys by flag, by environment variable and as a URL's userinfo; then
    every file under --out and the cache (SQLite included), stdout, stderr and probe's output."""
    target, reference = servers(RAW)
    flag_key, env_key = f"sk-flag-{uuid.uuid4().hex}", f"sk-env-{uuid.uuid4().hex}"
    url_user, url_key = "auditor", f"sk-url-{uuid.uuid4().hex}"
    userinfo_url = target.url.replace("http://", f"http://{url_user}:{url_key}@")
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = _audit_args(RAW, target, reference, out, cache, "--reference-api-key", flag_key)
    args[args.index("--target-base-url") + 1] = userinfo_url
    done = subprocess.run(
        _cli(*args),
        env=_subprocess_env(BLACKBOX_AUDIT_TARGET_API_KEY=env_key),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    sent = {r.headers.get("authorization") for r in target.log()}
    basic = httpx.BasicAuth(url_user, url_key)._auth_header
    assert sent == {basic}, sent  # one Authorization header: the URL's userinfo, over the variable's key
    assert {r.headers.get("authorization") for r in reference.log()} == {f"Bearer {flag_key}"}

    # A failing run (401) and a refused connection, each with the secret URL, and probe's output.
    monkeypatch.setenv("BLACKBOX_AUDIT_TARGET_API_KEY", env_key)
    target.add(Rule(error_status(401, "Invalid API key"), match=lambda body: body is not None))
    failed_args = _audit_args(RAW, target, reference, tmp_path / "out-401", tmp_path / "cache-401", "--quiet")
    failed_args[failed_args.index("--target-base-url") + 1] = userinfo_url
    assert cli_main(failed_args) == 1
    failed = capsys.readouterr()
    refused_url = f"http://{url_user}:{url_key}@127.0.0.1:{_free_port()}/v1"
    refused_args = _audit_args(RAW, target, reference, tmp_path / "out-refused", tmp_path / "cache-refused", "--quiet")
    refused_args[refused_args.index("--reference-base-url") + 1] = refused_url
    assert cli_main(refused_args) == 1
    refused = capsys.readouterr()
    with FaultServer(SMOLLM2) as probed:
        probe_url = probed.url.replace("http://", f"http://{url_user}:{url_key}@")
        assert (
            cli_main(["probe", "--base-url", probe_url, "--model", "smollm2-135m-instruct", "--dialect", "vllm"]) == 0
        )
        probe = capsys.readouterr()
        assert probed.url in probe.out and not probed.misses

    written = [f for root in tmp_path.iterdir() if root.is_dir() for f in root.rglob("*") if f.is_file()]
    assert any(f.name == "cache.db" for f in written) and any(f.name == "report.html" for f in written)
    texts = [done.stdout, done.stderr, failed.out, failed.err, refused.out, refused.err, probe.out, probe.err]
    for secret in (flag_key, env_key, url_key):
        for f in written:
            assert secret.encode() not in f.read_bytes(), f"{secret[:10]}... written to {f}"
        for text in texts:
            assert secret not in text
    assert "auditor:" not in " ".join(texts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the output folder is one set ------------------------------------------------------------


def _fail_spool(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "results.jsonl")


@pytest.mark.parametrize("failing", ["results.jsonl", "report.md", "report.html", "manifest.json", "the swap"])
def test_a_failure_at_any_file_leaves_the_previous_complete_set(failing, fake_server, tmp_path, capsys, monkeypatch):
    out = tmp_path / "work" / "out"
    assert cli_main([*fake_audit(fake_server, out), "--top-k", "3", "--quiet"]) == 0
    before = folder_bytes(out)
    assert sorted(before) == sorted(outputs_module.OUTPUT_FILES)
    capsys.readouterr()

    if failing == "results.jsonl":
        monkeypatch.setattr(RecordSpool, "write_ranked", _fail_spool)
    elif failing == "the swap":
        monkeypatch.setattr(outputs_module, "_exchange", lambda a, b: _fail_spool())
    else:
        original = outputs_module.OutputSet.write

        def write(self, name, parts):
            if name == failing:
                path = original(self, name, [b"partial"])  # half-written, then the disk fills
                raise outputs_module._disk(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)), self.out)
            return original(self, name, parts)

        monkeypatch.setattr(outputs_module.OutputSet, "write", write)
    assert cli_main([*fake_audit(fake_server, out), "--top-k", "5", "--quiet"]) == 1
    assert "No space left on device" in one_error_line(capsys.readouterr().err)
    assert folder_bytes(out) == before, "the previous set, whole and alone"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"], "no staging folder or temporary file left"

    monkeypatch.undo()
    assert cli_main([*fake_audit(fake_server, out), "--top-k", "5", "--quiet"]) == 0
    after = folder_bytes(out)
    assert json.loads(after["manifest.json"])["config"]["top_k"] == 5 and after["report.html"] != before["report.html"]


def test_a_full_disk_under_out_is_one_line_and_leaves_nothing(fake_server, tmp_path, capsys):
    with mounted("tmpfs", tmp_path / "small", size_kib=24) as small:
        code = cli_main([*fake_audit(fake_server, small / "out"), "--quiet"])
        line = one_error_line(capsys.readouterr().err)
        assert code == 1 and "No space left on device" in line and f"{small / 'out'}" in line
        assert list(small.iterdir()) == []


# -- file-system faults ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a-file", "read-only", "proc"])
@pytest.mark.parametrize("flag", ["--out", "--cache-dir"])
def test_an_unusable_folder_is_one_line_before_any_request(flag, where, fake_server, tmp_path, capsys):
    expected_code = 2 if where == "a-file" else 1
    with _unusable(where, tmp_path) as folder:
        args = fake_audit(fake_server, tmp_path / "out" if flag == "--cache-dir" else folder, "--quiet")
        if flag == "--cache-dir":
            args += ["--cache-dir", str(folder)]
        code = cli_main(args)
        line = one_error_line(capsys.readouterr().err)
    assert code == expected_code, line
    assert str(folder) in line
    if flag == "--out":
        assert requests_to(fake_server) == 0, "refused before any request"


@contextmanager
def _unusable(where: str, tmp_path: Path) -> Iterator[Path]:
    if where == "a-file":
        path = tmp_path / "taken"
        path.write_text("a file where a folder should be\n")
        yield path
    elif where == "proc":
        yield Path("/proc/blackbox-audit-test")
    else:
        with mounted("read-only", tmp_path / "ro") as folder:
            yield folder / "inside"


def test_a_cache_that_fills_midway_warns_once_and_the_results_are_the_same(fake_server, tmp_path):
    clean = subprocess.run(
        _cli(*fake_audit(fake_server, tmp_path / "clean", "--no-cache", "--quiet", "--limit", "40")),
        env=_subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    with mounted("tmpfs", tmp_path / "tiny-cache", size_kib=512) as cache:  # opens; fills after ~20 answers
        run = subprocess.run(
            _cli(*fake_audit(fake_server, tmp_path / "out", "--cache-dir", str(cache / "c"), "--quiet", "--limit", "40")),
            env=_subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the response cache in "), run.stderr
    assert "carrying on without it" in warnings[0] and "Traceback" not in run.stderr
    assert (tmp_path / "out" / "results.jsonl").read_bytes() == (tmp_path / "clean" / "results.jsonl").read_bytes()


def test_a_corrupt_cache_is_named_and_cache_clear_removes_it(fake_server, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert cli_main([*fake_audit(fake_server, tmp_path / "out"), "--cache-dir", str(cache), "--quiet"]) == 0
    capsys.readouterr()
    (cache / "cache.db").write_bytes(b"this is not a database" * 100)
    for args in (
        ["cache", "stats", "--cache-dir", str(cache)],
        [*fake_audit(fake_server, tmp_path / "out2"), "--cache-dir", str(cache), "--quiet"],
    ):
        assert cli_main(args) == 1
        line = one_error_line(capsys.readouterr().err)
        assert "unreadable" in line and "blackbox-audit cache clear" in line
    assert cli_main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "removed an unreadable cache" in capsys.readouterr().out
    assert cli_main(["cache", "stats", "--cache-dir", str(cache)]) == 0
    assert "0 entries" in capsys.readouterr().out


# -- errors that will not heal fail fast -------------------------------------------------------


def test_connection_refused_fails_in_under_5_s_with_a_hint(fake_server, tmp_path, capsys):
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    started = time.monotonic()
    code = cli_main(fake_audit(fake_server, tmp_path / "out", reference_url=dead))
    elapsed = time.monotonic() - started
    line = one_error_line(capsys.readouterr().err)
    assert code == 1 and elapsed < 5, (elapsed, line)
    assert "is the server running?" in line and "--reference-base-url" in line


def test_https_to_a_plain_http_server_fails_fast_saying_use_http(servers, tmp_path, capsys):
    """A plain-HTTP server answers a TLS hello with an HTTP 400, which TLS reads as a wrong
    version number (as vLLM's uvicorn does; the fault server is a stdlib HTTP server)."""
    target, reference = servers(RAW)
    args = _audit_args(RAW, target, reference, tmp_path / "out", tmp_path / "cache", "--quiet")
    args[args.index("--target-base-url") + 1] = target.url.replace("http://", "https://")
    started = time.monotonic()
    code = cli_main(args)
    line = one_error_line(capsys.readouterr().err)
    assert code == 1 and time.monotonic() - started < 5, line
    assert "use http://" in line and "--target-base-url" in line


def test_501_fails_at_once_with_a_hint(servers, tmp_path, capsys):
    target, reference = servers(RAW)
    target.add(Rule(error_status(501, "Not Implemented"), path=COMPLETIONS))
    started = time.monotonic()
    code = cli_main(_audit_args(RAW, target, reference, tmp_path / "out", tmp_path / "cache", "--quiet"))
    line = one_error_line(capsys.readouterr().err)
    assert code == 1 and time.monotonic() - started < 5 and target.faults_injected == 1, line
    assert "does not implement" in line and "--target-base-url" in line


def test_a_base_url_without_v1_is_told_to_add_it(fake_server, tmp_path, capsys):
    code = cli_main(fake_audit(fake_server.removesuffix("/v1"), tmp_path / "out", "--quiet", reference_url=fake_server))
    line = one_error_line(capsys.readouterr().err)
    assert code == 1 and "answered 404" in line and "usually ends in /v1" in line


def test_retries_print_one_line_per_wave_when_progress_is_on(servers, tmp_path):
    target, reference = servers(RAW)
    target.add(Rule(error_status(503, "Service Unavailable"), path=COMPLETIONS, nth=range(1, 3)))
    args = _audit_args(RAW, target, reference, tmp_path / "out", tmp_path / "cache")
    done = subprocess.run(_cli(*args), env=_subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    retry_lines = [ANSI.sub("", line) for line in re.split(r"[\r\n]", done.stderr) if "retrying in" in line]
    assert len(retry_lines) == 1 and retry_lines[0].lstrip().startswith("target: ")
    assert "answered 503" in retry_lines[0] and "attempt 2 of" in retry_lines[0]
    target.clear()
    target.add(Rule(error_status(503, "Service Unavailable"), path=COMPLETIONS, nth=range(1, 3)))
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache-quiet")
    quiet = subprocess.run(
        _cli(*args, "--quiet"), env=_subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert quiet.returncode == 0 and target.faults_injected == 2 and "retrying" not in quiet.stderr


# -- --dry-run is an upper bound ---------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["auto", "server"])
def test_dry_run_counts_at_least_what_the_audit_sends(tokenizer, fake_server, tmp_path, capsys):
    """Both roles on one server: what it receives must not exceed the two bounds together."""
    base = [*fake_audit(fake_server, tmp_path / "out", "--quiet", "--no-cache", "--limit", "20")]
    base += ["--target-tokenizer", tokenizer, "--reference-tokenizer", tokenizer]
    assert cli_main([*base, "--dry-run"]) == 0
    table = capsys.readouterr().out
    bound = {
        role: int(re.search(rf"{role} requests \(at most\)\s+([\d,]+)", table).group(1).replace(",", ""))  # type: ignore[union-attr]
        for role in ("target", "reference")
    }
    before = requests_to(fake_server)
    assert cli_main(base) == 0
    sent = requests_to(fake_server) - before
    assert sent <= bound["target"] + bound["reference"], (sent, bound)


# -- smaller refusals --------------------------------------------------------------------------


def test_documents_all_shorter_than_the_prefill_say_so(fake_server, tmp_path, capsys):
    corpus = tmp_path / "tiny.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in "abcdefgh"))
    code = cli_main(
        [*fake_audit(fake_server, tmp_path / "out", "--quiet"), "--corpus", str(corpus), "--prefill-tokens", "8"]
    )
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "no prefill: 8 of the 8 documents" in line and "shorter than 8 tokens" in line
    assert "--prefill-tokens" in line
    assert not (tmp_path / "out").exists()


def test_asking_for_more_prefills_than_documents_warns(fake_server, tmp_path, capsys):
    corpus = tmp_path / "small.jsonl"
    starts = ("Rivers", "Mountains", "Cities")
    corpus.write_text(
        "".join(json.dumps({"text": f"{word} say something long enough here."}) + "\n" for word in starts)
    )
    code = cli_main([*fake_audit(fake_server, tmp_path / "out"), "--corpus", str(corpus), "--limit", "10", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "warning: --limit 10 asks for more prefills than the corpus has documents (3)" in captured.err
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 3


def test_eval_refuses_a_results_file_shorter_than_its_manifest(fake_server, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main([*fake_audit(fake_server, out), "--quiet"]) == 0
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:-2]))
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "x"\ndescription = "d"\nkeyword_sets = [["end"]]\n')
    capsys.readouterr()
    assert cli_main(["eval", str(out), "--organism", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"holds {len(lines) - 2} records but manifest.json counts {len(lines)}" in err
