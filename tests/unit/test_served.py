"""Which model answered, carried from the wire to the audit, and one prompt of a recorded batch
replayed alone (what the sentinel asks of a recording)."""

from __future__ import annotations

from providers.batching import split_choices
from providers.fixtures import Exchange, PromptAnswers, exchange_key
from providers.records import ServedModel
from providers.wire import Wire

ANSWER = {
    "model": "gpt-x-2025-01-01",
    "system_fingerprint": "fp_1",
    "usage": {"prompt_tokens": 6, "completion_tokens": 4},
    "choices": [{"index": 1, "text": "b"}, {"index": 0, "text": "a"}],
}


def test_a_batch_split_keeps_the_served_model_in_every_part_but_not_the_usage():
    parts = split_choices(ANSWER, 2, 1)
    assert parts == [
        {"model": "gpt-x-2025-01-01", "system_fingerprint": "fp_1", "choices": [{"index": 0, "text": "a"}]},
        {"model": "gpt-x-2025-01-01", "system_fingerprint": "fp_1", "choices": [{"index": 0, "text": "b"}]},
    ]


def test_the_served_model_is_read_where_the_server_says_it():
    wire = Wire("test")
    assert wire.served(ANSWER) == ServedModel(model="gpt-x-2025-01-01", system_fingerprint="fp_1")
    assert wire.served({"model": "m", "system_fingerprint": None}) == ServedModel(model="m")
    assert wire.served({"choices": []}) is None and wire.served([]) is None


def test_one_prompt_of_a_recorded_batch_is_answered_alone():
    body = {"model": "m", "prompt": ["A", "B"], "max_tokens": 2}
    exchange = Exchange("POST", "/v1/completions", body, 200, {}, ANSWER, {})
    answers = PromptAnswers({exchange_key("POST", "/v1/completions", body): exchange})
    alone = answers.answer("POST", "/v1/completions", {"model": "m", "prompt": "B", "max_tokens": 2})
    assert alone is not None and alone["choices"] == [{"index": 0, "text": "b"}]
    assert alone["system_fingerprint"] == "fp_1" and alone["usage"] is None
    assert answers.answer("POST", "/v1/completions", {"model": "m", "prompt": "C", "max_tokens": 2}) is None
    assert answers.answer("POST", "/v1/completions", {"model": "m", "prompt": "B", "max_tokens": 3}) is None
