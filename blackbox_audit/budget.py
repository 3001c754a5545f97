"""`--max-target-tokens`: a cap on the tokens the target generates for an audit, never exceeded.

Every completion reserves `max_new_tokens` whether the server generates them all, stops early or
the cache answers, and the sentinel one more: so the prefills the budget covers are known before
any request, the same on every run, and the reservation bounds what the service can bill. An
audit over budget completes the first prefills the budget covers (in the audit's seeded order)
and writes their complete output set; the same command with a larger budget resumes from the
response cache and ends with the results an unbudgeted audit gives.
"""

from __future__ import annotations

from providers.records import Record


class TargetBudget(Record):
    """What `--max-target-tokens` allowed: `reserved_tokens` <= `max_target_tokens` always."""

    max_target_tokens: int
    reserved_tokens: int
    prefills_done: int
    prefills_total: int
    needed_tokens: int
    """What the whole audit reserves: a budget of at least this finishes it."""
    reached: bool


def per_completion(max_new_tokens: int, n: int = 1) -> int:
    """The reservation of one prompt's request: every token it may generate."""
    return max_new_tokens * n


def sentinel_tokens(max_new_tokens: int, sentinel: bool) -> int:
    return per_completion(max_new_tokens) if sentinel else 0


def prefills_covered(max_target_tokens: int, max_new_tokens: int, sentinel: bool) -> int:
    """How many prefills' completions fit beside the sentinel's reservation."""
    return max(0, max_target_tokens - sentinel_tokens(max_new_tokens, sentinel)) // per_completion(max_new_tokens)


def plan_budget(max_target_tokens: int | None, max_new_tokens: int, sentinel: bool, total: int) -> TargetBudget | None:
    """The budget's share of `total` prefills; None when there is no budget."""
    if max_target_tokens is None:
        return None
    done = min(total, prefills_covered(max_target_tokens, max_new_tokens, sentinel))
    reserve = sentinel_tokens(max_new_tokens, sentinel)
    return TargetBudget(
        max_target_tokens=max_target_tokens,
        reserved_tokens=done * per_completion(max_new_tokens) + reserve,
        prefills_done=done,
        prefills_total=total,
        needed_tokens=total * per_completion(max_new_tokens) + reserve,
        reached=done < total,
    )
