"""Is spreading each token's NLL evenly over its bytes good enough for the span scores?

    python -m bench.profile_spread      (reads the organism audits on disk; no server needed)

The per-byte profile (`blackbox_audit.profile`) spreads a token's NLL evenly over the bytes it
spells. Inside a token that is a guess; at a byte where both tokenizers put a token boundary
the running sums are exact. The alternative measured here scores only windows whose edges are
such shared boundaries (the smallest span of at least W bytes from each shared boundary, its
summed gap over max(length, W)), so no window sum contains a spread share. Both rank by
`window_gap` (collapsing repeats is a separate question) and are judged like
`organisms.detection`: first-hit rank per audit with a hit, noise loops demoted.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Sequence

from blackbox_audit import profile as P
from blackbox_audit.evaluate import is_hit, load_organism, load_results
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, rank
from blackbox_audit.records import CompletionResult, TokenLogprob
from organisms.build import RECIPES
from organisms.detection import at_width, audited

WIDTHS = (32, 64)


def boundaries(data: bytes, tokens: Sequence[TokenLogprob], context: bytes = b"") -> set[int] | None:
    """Byte offsets in `data` where a token ends (and 0); None when the tokens cannot be placed."""
    full, position, out = context + data, 0, {0, len(data)}
    for token in tokens:
        spelled = P._token_bytes(token.text)
        if spelled is None or full[position : position + len(spelled)] != spelled:
            return None
        position += len(spelled)
        if position >= len(context):
            out.add(position - len(context))
    return out


def shared_boundary_window(record: CompletionResult, width: int) -> float:
    context = P.reference_context(record.prefill, record.reference_extra_chars)
    profile = P.record_profile(record)
    assert profile is not None
    target = boundaries(profile.data, record.target_tokens)
    reference = boundaries(profile.data, record.reference_tokens, context.encode())
    if target is None or reference is None:
        return P.window_gap(profile.gap, width)
    edges = sorted(target & reference)
    sums = [0.0]
    for gap in profile.gap:
        sums.append(sums[-1] + gap)
    best, j = -math.inf, 0
    for start in edges:
        while j < len(edges) and edges[j] - start < width:
            j += 1
        end = edges[j] if j < len(edges) else edges[-1]
        if end > start:
            best = max(best, (sums[end] - sums[start]) / max(end - start, width))
    return best


def first_hit(records: Sequence[CompletionResult], hits: dict[str, bool]) -> int:
    ranked = rank(records, "window_gap", degeneracy_threshold=DEFAULT_DEGENERACY_THRESHOLD)
    return next((i for i, r in enumerate(ranked, start=1) if hits[r.completion]), len(ranked) + 1)


def main() -> int:
    rows: dict[str, list[tuple[bool, int]]] = {}
    for cell in audited(list(RECIPES.values())):
        records = [r for r in load_results(cell.folder) if r.gaps is not None]
        spec = load_organism(cell.recipe.spec)
        hits = {r.completion: is_hit(r.completion, spec) for r in records}
        if not any(hits.values()):
            continue
        for width in WIDTHS:
            even = at_width(records, width)
            rows.setdefault(f"even spread, {width} bytes", []).append((cell.true_base, first_hit(even, hits)))
            shared = [
                r.model_copy(
                    update={"gaps": r.gaps.model_copy(update={"window_gap": shared_boundary_window(r, width)})}
                )
                for r in even
                if r.gaps is not None
            ]
            rows.setdefault(f"shared boundaries, {width} bytes", []).append((cell.true_base, first_hit(shared, hits)))
    if not rows:
        print("no organism audits on disk: run `python -m organisms.results --run` first", file=sys.stderr)
        return 1
    print("| window | audits | geomean first hit | top 10, true base | top 10, cross-family |")
    print("|---|---:|---:|---:|---:|")
    for name, outcomes in rows.items():
        geomean = math.exp(statistics.fmean(math.log(rank_) for _, rank_ in outcomes))
        true_base = [rank_ for base, rank_ in outcomes if base]
        cross = [rank_ for base, rank_ in outcomes if not base]
        print(
            f"| {name} | {len(outcomes)} | {geomean:.2f} | {sum(r <= 10 for r in true_base)}/{len(true_base)} "
            f"| {sum(r <= 10 for r in cross)}/{len(cross)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
