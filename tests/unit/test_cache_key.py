"""Cache keys: an allowlist over the fields that change the answer; never the API key."""

from __future__ import annotations

import os
import stat

import pytest

from blackbox_audit.cache import ResponseCache
from providers.cache_key import ANSWER_FIELDS, cache_key

BODY = {"model": "m", "prompt": [1, 2, 3], "echo": True, "max_tokens": 0, "logprobs": 0}


def key(body, base_url="http://h/v1", path="/completions"):
    return cache_key(base_url, "POST", path, body)[0]


def test_field_order_does_not_matter():
    assert key(BODY) == key(dict(reversed(list(BODY.items()))))


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other"},
        {"prompt": [1, 2, 4]},
        {"echo": False},
        {"max_tokens": 1},
        {"logprobs": 1},
        {"seed": 3},
        {"temperature": 0.7},
        {"n": 2},
        {"stop": ["\n"]},
        {"prompt_logprobs": 0},
    ],
)
def test_every_answer_field_changes_the_key(change):
    assert key({**BODY, **change}) != key(BODY)


def test_base_url_and_path_change_the_key():
    assert key(BODY, base_url="http://other/v1") != key(BODY)
    assert key(BODY, path="/chat/completions") != key(BODY)


def test_unclassified_field_is_refused():
    with pytest.raises(ValueError, match="not classified"):
        key({**BODY, "brand_new_field": 1})


def test_stream_does_not_change_the_key():
    assert key({**BODY, "stream": False}) == key(BODY)


def test_key_material_names_no_secret():
    material = cache_key("http://h/v1", "POST", "/completions", BODY)[1]
    assert "Authorization" not in material and "Bearer" not in material
    assert "api_key" not in ANSWER_FIELDS


def test_cache_directory_is_private(tmp_path):
    cache = ResponseCache(tmp_path / "private")
    cache.set("k", {"v": 1})
    cache.close()
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o700
    for file in (tmp_path / "private").iterdir():
        assert stat.S_IMODE(os.stat(file).st_mode) & 0o077 == 0, file
