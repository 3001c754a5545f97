"""--max-target-tokens' arithmetic and --dry-run's token and cost bounds, hand-checked."""

from __future__ import annotations

import pytest

from blackbox_audit.budget import plan_budget, prefills_covered
from blackbox_audit.config import ConfigError, load_config
from blackbox_audit.estimate import CHAT_MARKUP_TOKENS, estimate

URL = "http://127.0.0.1:9/v1"


def _config(**overrides):
    endpoints = {"target": {"base_url": URL, "model": "t"}, "reference": {"base_url": URL, "model": "r"}}
    return load_config(overrides={**endpoints, "corpus": "default", **overrides})


def test_the_budget_reserves_max_new_tokens_per_completion_and_the_sentinel():
    # 1000 tokens, 100 per completion: the sentinel's 100, then 9 completions
    assert prefills_covered(1000, 100, sentinel=True) == 9
    assert prefills_covered(1000, 100, sentinel=False) == 10
    assert prefills_covered(999, 100, sentinel=True) == 8
    budget = plan_budget(1000, 100, True, total=40)
    assert budget is not None and budget.reached
    assert (budget.prefills_done, budget.reserved_tokens, budget.needed_tokens) == (9, 1000, 4100)
    enough = plan_budget(4100, 100, True, total=40)
    assert enough is not None and not enough.reached and enough.reserved_tokens == 4100
    assert plan_budget(None, 100, True, total=40) is None


@pytest.mark.parametrize(("sentinel", "least"), [(True, 200), (False, 100)])
def test_a_budget_that_covers_no_completion_is_refused(sentinel, least):
    with pytest.raises(ConfigError, match=rf"--max-target-tokens: {least - 1} covers no completion.*at least {least}"):
        load_config(
            overrides={
                "target": {"base_url": URL, "model": "t"},
                "reference": {"base_url": URL, "model": "r"},
                "max_target_tokens": least - 1,
                "sentinel": sentinel,
            },
            names={"max_target_tokens": "--max-target-tokens"},
        )


def test_dry_run_bounds_tokens_and_cost_per_side_raw():
    """5 raw prefills of 3 tokens, 100 new tokens, prices 2/8 and 0.5/1 USD per million."""
    e = estimate(_config(limit=5, target={"base_url": URL, "model": "t", "price": "2/8"},
                         reference={"base_url": URL, "model": "r", "price": "0.5/1"}))  # fmt: skip
    target, reference = e.side("target"), e.side("reference")
    # target: 5 prompts and the sentinel's, each 3 prefill tokens + a BOS; 100 generated each
    assert (target.input_tokens, target.output_tokens) == (6 * 4, 6 * 100)
    assert target.cost == pytest.approx((24 * 2 + 600 * 8) / 1e6)  # 0.004848
    # reference: each completion scored at most twice, context 4 + completion 100; 1 token generated each time
    assert (reference.input_tokens, reference.output_tokens) == (2 * 5 * 104, 2 * 5)
    assert reference.cost == pytest.approx((1040 * 0.5 + 10 * 1) / 1e6)  # 0.00053
    assert e.total_cost == pytest.approx(0.005378)
    table = e.table()
    assert "every count below is an upper bound" in table
    assert "target cost USD (at most)" in table and "0.004848" in table and "0.005378" in table


def test_dry_run_chat_counts_the_messages_bytes_and_a_null_target():
    config = _config(limit=4, framing="chat", max_new_tokens=50, sentinel=False, null_prefills=2,
                     null_target={"base_url": URL, "model": "n", "price": "1/1"})  # fmt: skip
    e = estimate(config)
    # "You are a helpful assistant." (28 bytes) + "Tell me anything." (17) + 3 prefill tokens + markup
    prompt = 28 + 17 + 3 + CHAT_MARKUP_TOKENS
    assert e.side("target").input_tokens == 4 * prompt and e.side("target").output_tokens == 4 * 50
    assert e.side("target").cost is None and e.side("reference").cost is None
    null = e.side("null target")
    assert (null.input_tokens, null.output_tokens) == (2 * prompt, 2 * 50)
    assert e.total_cost == pytest.approx((2 * prompt + 100) / 1e6)
    assert e.side("reference").input_tokens == 2 * (4 + 2) * (prompt + 50)
    assert "no price for --target-price, --reference-price" in e.table()


def test_dry_run_under_a_budget_counts_the_prefills_it_covers():
    e = estimate(_config(limit=40, max_target_tokens=1000))
    assert e.prefills == 9 and e.side("target").output_tokens == 1000
    assert "--max-target-tokens 1,000 covers 9 of the 40 prefills" in e.table()


@pytest.mark.parametrize("given", ["2.5", "2.5/x", "1/2/3", "-1/2"])
def test_a_bad_price_names_its_flag(given):
    with pytest.raises(ConfigError, match="--target-price: "):
        load_config(
            overrides={
                "target": {"base_url": URL, "model": "t", "price": given},
                "reference": {"base_url": URL, "model": "r"},
            },
            names={"target.price": "--target-price"},
        )
