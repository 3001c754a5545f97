"""Config assembly (flags over a config file), API-key resolution, and the CLI entry point.

Nothing here may send a request: endpoints are on 127.0.0.1:9 (discard; nothing answers),
and `no_requests` makes any attempt to connect or send fail the test at once.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from blackbox_audit import endpoints as endpoints_module
from blackbox_audit import pipeline as audit_module
from blackbox_audit.cache import ResponseCache
from blackbox_audit.cli import build_parser, main
from blackbox_audit.commands import audit_config
from blackbox_audit.config import AuditConfig, ConfigError, api_key_variables, resolve_api_key
from tests.conftest import KEY_VARIABLES

URL = "http://127.0.0.1:9/v1"
ENDPOINTS = ["--target-base-url", URL, "--target-model", "tgt", "--reference-base-url", URL, "--reference-model", "ref"]


@pytest.fixture(autouse=True)
def no_requests(monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail("a request was attempted")

    async def refuse_async(*args, **kwargs):
        pytest.fail("a request was attempted")

    monkeypatch.setattr(httpx.Client, "send", refuse)
    monkeypatch.setattr(httpx.AsyncClient, "send", refuse_async)
    monkeypatch.setattr(endpoints_module, "connect", refuse_async)
    monkeypatch.setattr(audit_module, "audit_sync", refuse)


def config_from(*flags: str) -> AuditConfig:
    return audit_config(build_parser().parse_args(["audit", *flags]))


# -- flags and config files --------------------------------------------------------------


def test_flags_alone():
    config = config_from(*ENDPOINTS, "--limit", "5", "--framing", "chat", "--seed", "9")
    assert (config.target.base_url, config.target.model) == (URL, "tgt")
    assert (config.reference.base_url, config.reference.model) == (URL, "ref")
    assert (config.limit, config.framing, config.seed) == (5, "chat", 9)
    # untouched flags keep the documented defaults
    assert (config.prefill_tokens, config.max_new_tokens, config.corpus) == (3, 100, "default")
    assert (config.degeneracy_threshold, config.use_cache) == (0.6, True)


TOML = f"""
limit = 7
seed = 3
framing = "chat"
max_new_tokens = 20

[target]
base_url = "{URL}"
model = "file-target"

[reference]
base_url = "http://127.0.0.1:9/v1/"
model = "file-reference"
max_concurrency = 2
"""

JSON = {
    "limit": 7,
    "seed": 3,
    "framing": "chat",
    "max_new_tokens": 20,
    "target": {"base_url": URL, "model": "file-target"},
    "reference": {"base_url": "http://127.0.0.1:9/v1/", "model": "file-reference", "max_concurrency": 2},
}


@pytest.fixture(params=["toml", "json"])
def config_file(request, tmp_path):
    path = tmp_path / f"audit.{request.param}"
    path.write_text(TOML if request.param == "toml" else json.dumps(JSON), encoding="utf-8")
    return path


def test_config_file_alone(config_file):
    config = config_from("--config", str(config_file))
    assert (config.limit, config.seed, config.framing, config.max_new_tokens) == (7, 3, "chat", 20)
    assert config.target.model == "file-target"
    assert config.reference.base_url == URL  # trailing slash normalised
    assert config.reference.max_concurrency == 2


def test_flags_override_the_config_file(config_file):
    config = config_from(
        "--config",
        str(config_file),
        "--limit",
        "5",
        "--framing",
        "raw",
        "--target-model",
        "flag-target",
        "--reference-concurrency",
        "4",
    )
    assert (config.limit, config.framing) == (5, "raw")  # flags win
    assert (config.seed, config.max_new_tokens) == (3, 20)  # the file's where no flag is given
    assert (config.target.model, config.target.base_url) == ("flag-target", URL)  # one field of a table
    assert (config.reference.model, config.reference.max_concurrency) == ("file-reference", 4)


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config_from(*ENDPOINTS, "--config", str(tmp_path / "nope.toml"))


@pytest.mark.parametrize(("name", "text"), [("bad.toml", "limit = = 3"), ("bad.json", "{limit: 3")])
def test_unreadable_config_file_is_a_usage_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read config file"):
        config_from(*ENDPOINTS, "--config", str(path))


def test_unknown_config_field_is_a_usage_error(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({**JSON, "limt": 3}), encoding="utf-8")
    with pytest.raises(ConfigError, match="limt"):
        config_from("--config", str(path))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("string-target.toml", f'target = "{URL}"\n'),
        ("list-target.json", '{"target": ["' + URL + '"]}'),
        ("array.json", "[1, 2]"),
    ],
)
def test_config_file_of_the_wrong_shape_is_a_usage_error(tmp_path, capsys, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert main(["audit", "--config", str(path), *ENDPOINTS[2:], "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


# -- refusals before any request ---------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (ENDPOINTS[2:], ["--target-base-url", "--target-model"]),
        (ENDPOINTS[:2] + ENDPOINTS[4:], ["--target-base-url", "--target-model"]),
        (ENDPOINTS[:4] + ENDPOINTS[6:], ["--reference-base-url", "--reference-model"]),
        (ENDPOINTS[:4], ["--reference-base-url", "--reference-model"]),
    ],
)
def test_missing_endpoint_names_the_flag(flags, names):
    with pytest.raises(ConfigError) as info:
        config_from(*flags)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize("bad_url", ["127.0.0.1:9/v1", "ftp://127.0.0.1:9/v1", "http://", "not a url"])
def test_malformed_base_url(bad_url):
    flags = list(ENDPOINTS)
    flags[1] = bad_url
    with pytest.raises(ConfigError, match=r"--target-base-url: .*not an http\(s\) URL"):
        config_from(*flags)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--limit", "0"),
        ("--limit", "-1"),
        ("--max-new-tokens", "0"),
        ("--prefill-tokens", "0"),
        ("--target-concurrency", "0"),
        ("--temperature", "-0.5"),
    ],
)
def test_out_of_range_numbers_name_the_flag(flag, value):
    with pytest.raises(ConfigError, match=f"^{re.escape(flag)}: "):
        config_from(*ENDPOINTS, flag, value)


def test_a_bad_value_from_the_file_names_the_file(tmp_path):
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({**JSON, "limit": 0, "reference": {**JSON["reference"], "max_concurrency": 0}}))
    with pytest.raises(ConfigError) as info:
        config_from("--config", str(path))
    assert f"limit in {path}: " in str(info.value)
    assert f"reference.max_concurrency in {path}: " in str(info.value)


def test_degeneracy_flags_conflict(capsys):
    assert main(["audit", *ENDPOINTS, "--no-degeneracy-filter", "--degeneracy-threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "--degeneracy-threshold: not allowed with argument --no-degeneracy-filter" in err


def test_no_degeneracy_filter_and_threshold_alone():
    assert config_from(*ENDPOINTS, "--no-degeneracy-filter").degeneracy_threshold is None
    assert config_from(*ENDPOINTS, "--degeneracy-threshold", "0.8").degeneracy_threshold == 0.8


def test_no_cache():
    assert config_from(*ENDPOINTS).use_cache is True
    assert config_from(*ENDPOINTS, "--no-cache").use_cache is False


def test_cache_dir_turns_the_cache_on_over_the_config_file(tmp_path):
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({**JSON, "use_cache": False}), encoding="utf-8")
    config = config_from("--config", str(path), "--cache-dir", str(tmp_path / "c"))
    assert config.use_cache is True and config.cache_dir == tmp_path / "c"


def test_no_cache_conflicts_with_cache_dir(tmp_path, capsys):
    assert main(["audit", *ENDPOINTS, "--no-cache", "--cache-dir", str(tmp_path)]) == 2
    assert "--cache-dir: not allowed with argument --no-cache" in capsys.readouterr().err


def test_main_refuses_bad_flags_with_exit_2_and_sends_nothing(capsys):
    assert main(["audit", *ENDPOINTS, "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "limit" in err


def test_main_names_the_missing_flag(capsys):
    assert main(["audit", *ENDPOINTS[4:], "--dry-run"]) == 2
    assert "--target-base-url" in capsys.readouterr().err


# -- API keys ----------------------------------------------------------------------------


def test_the_test_environment_clears_every_key_variable_the_tool_reads():
    from providers.dialects import DIALECTS

    CLEARED = KEY_VARIABLES

    hosts = ["http://127.0.0.1:9/v1"] + [f"https://{host}/v1" for d in DIALECTS.values() for host in d.hosts]
    read = {
        name
        for role in ("target", "reference", "null-target", "")
        for url in hosts
        for name in api_key_variables(role, url)
    }
    assert read <= set(CLEARED), read - set(CLEARED)


def test_flag_key_wins(monkeypatch):
    for name in KEY_VARIABLES:
        monkeypatch.setenv(name, f"env-{name}")
    assert resolve_api_key("from-flag", URL, "target") == "from-flag"


def test_openai_key_never_goes_to_another_host(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert resolve_api_key(None, URL, "target") is None
    assert resolve_api_key(None, "https://my-vllm.example.com/v1", "reference") is None
    assert resolve_api_key(None, "https://my-vllm.example.com/v1") is None


@pytest.mark.parametrize(
    "spoof",
    ["https://api.openai.com.attacker.example/v1", "http://127.0.0.1:9/api.openai.com/v1"],
)
def test_openai_key_not_sent_to_a_host_that_merely_mentions_openai(monkeypatch, spoof):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert resolve_api_key(None, spoof, "target") is None


def test_openai_key_goes_to_api_openai_com(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert resolve_api_key(None, "https://api.openai.com/v1", "target") == "sk-openai"
    assert resolve_api_key(None, "https://api.openai.com/v1") == "sk-openai"


def test_role_specific_key_is_preferred(monkeypatch):
    monkeypatch.setenv("BLACKBOX_AUDIT_TARGET_API_KEY", "k-target")
    monkeypatch.setenv("BLACKBOX_AUDIT_API_KEY", "k-any")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    openai = "https://api.openai.com/v1"
    assert resolve_api_key(None, openai, "target") == "k-target"
    assert resolve_api_key(None, openai, "reference") == "k-any"  # generic before OpenAI's
    assert resolve_api_key(None, URL, "reference") == "k-any"
    monkeypatch.delenv("BLACKBOX_AUDIT_API_KEY")
    assert resolve_api_key(None, openai, "reference") == "sk-openai"
    assert resolve_api_key(None, URL, "reference") is None


def test_empty_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("BLACKBOX_AUDIT_TARGET_API_KEY", "")
    monkeypatch.setenv("BLACKBOX_AUDIT_API_KEY", "k-any")
    assert resolve_api_key(None, URL, "target") == "k-any"


def test_audit_config_resolves_keys_per_role(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("BLACKBOX_AUDIT_REFERENCE_API_KEY", "k-reference")
    config = config_from(
        "--target-base-url",
        "https://api.openai.com/v1",
        "--target-model",
        "davinci-002",
        "--reference-base-url",
        URL,
        "--reference-model",
        "ref",
    )
    assert config.target.api_key.get_secret_value() == "sk-openai"
    assert config.reference.api_key.get_secret_value() == "k-reference"
    config = config_from(*ENDPOINTS)
    assert config.target.api_key is None  # the OpenAI key stays home
    assert config.reference.api_key.get_secret_value() == "k-reference"


def test_dumps_never_contain_the_key(monkeypatch, config_file):
    monkeypatch.setenv("BLACKBOX_AUDIT_REFERENCE_API_KEY", "k-reference-secret")
    config = config_from("--config", str(config_file), "--target-api-key", "sk-flag-secret")
    assert config.target.api_key.get_secret_value() == "sk-flag-secret"
    for text in (
        str(config.model_dump()),
        str(config.model_dump(mode="json")),
        config.model_dump_json(),
        repr(config),
        str(config),
    ):
        assert "sk-flag-secret" not in text
        assert "k-reference-secret" not in text
    assert "api_key" not in config.model_dump()["target"]
    assert "api_key" not in json.loads(config.model_dump_json())["reference"]


# -- main --------------------------------------------------------------------------------


def test_dry_run_prints_the_estimate_and_sends_nothing(capsys, tmp_path):
    out = tmp_path / "out"
    code = main(["audit", *ENDPOINTS, "--corpus", "default", "--limit", "5", "--out", str(out), "--dry-run", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("dry run: nothing was sent")
    assert re.search(r"prefills \(at most\)\s+5$", captured.out, re.MULTILINE)
    # 5 completions and the sentinel, 100 tokens each
    assert re.search(r"target output tokens \(at most\)\s+600$", captured.out, re.MULTILINE)
    assert not out.exists()


def test_dry_run_on_a_missing_corpus_exits_2_with_a_message(capsys, tmp_path):
    missing = tmp_path / "no-such-corpus.jsonl"
    code = main(["audit", *ENDPOINTS, "--corpus", str(missing), "--dry-run", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert "not found" in err and str(missing) in err


def test_help_lists_every_command(capsys):
    help_text = build_parser().format_help()
    for command in ("audit", "probe", "cache", "local-vllm", "fixtures"):
        assert command in help_text
    assert main(["--help"]) == 0
    assert "audit" in capsys.readouterr().out


def test_audit_help_mentions_every_flag_group():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    help_text = subparsers.choices["audit"].format_help()
    for flag in ("--target-base-url", "--reference-model", "--config", "--dry-run", "--no-cache", "--limit"):
        assert flag in help_text


def test_cache_stats_and_clear_on_the_isolated_cache(capsys, tmp_path):
    cache_dir = tmp_path / "cache"  # conftest points $BLACKBOX_AUDIT_CACHE_DIR here
    assert main(["cache", "stats"]) == 0
    assert capsys.readouterr().out.strip() == f"{cache_dir}: no cache yet, 0 entries"
    assert not cache_dir.exists(), "stats creates nothing"
    ResponseCache(cache_dir).close()
    assert main(["cache", "stats"]) == 0
    assert capsys.readouterr().out.strip().startswith(f"{cache_dir}: 0 entries")
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.strip() == f"removed 0 entries from {cache_dir}"


def test_cache_stats_on_a_mistyped_folder_creates_nothing(capsys, tmp_path):
    other = tmp_path / "elsewhere"
    assert main(["cache", "stats", "--cache-dir", str(other)]) == 2
    assert capsys.readouterr().err.startswith(f"error: no cache at {other}")
    assert not other.exists() and not (tmp_path / "cache").exists()


def test_organism_flag_takes_a_spec_and_refuses_a_bad_one_before_any_request(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "x"\ndescription = "y"\nkeyword_sets = [["tower"]]\n')
    assert config_from(*ENDPOINTS, "--organism", str(spec)).organism == spec
    spec.write_text('name = "x"\ndescription = "y"\n')  # no keyword set: unusable
    assert main(["audit", *ENDPOINTS, "--organism", str(spec)]) == 2
    assert "--organism" in capsys.readouterr().err
