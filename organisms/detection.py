"""Every score, every degeneracy treatment, every window width, on every organism audit on disk.

    python -m organisms.detection [NAMES]            the summary and the per-audit tables (markdown)
    python -m organisms.detection --summary [NAMES]  the summary only
    python -m organisms.detection --json [NAMES]     every cell as JSON lines

Records keep both sides' per-token logprobs, so each ranking is recomputed from the audit's
results.jsonl (`organisms.results` wrote them) with `ranking.rank`: every score of
`gap.SCORE_NAMES`, the span scores (and `rank_average`, which reads one) also at other window
widths (`score@width`), each with the
degeneracy filter off, demoting every degenerate completion (`all-loops`, the filter before
the span scores), or demoting only the loops whose first occurrence carries little gap
(`noise-loops`, today's default). A cell is first-hit rank / hits@10 / hits@100, judged by the
organism's spec (`evaluate.is_hit`); the baselines are the seeded random ordering of
`blackbox-audit eval` and the expected first-hit rank of a random ordering, (n + 1) / (h + 1).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blackbox_audit import profile as P
from blackbox_audit.evaluate import is_hit, load_organism, load_results
from blackbox_audit.gap import SCORE_NAMES
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, DEFAULT_SCORE, demoted_flags, rank
from blackbox_audit.records import CompletionResult
from organisms.build import RECIPES, Recipe
from organisms.results import Cell, cells

SPAN_SCORES = ("window_gap", "collapsed_window_gap", "rank_average")
WIDTHS = (16, 24, 32, 48, 64, 96, 128)
SCORES: tuple[str, ...] = (
    *SCORE_NAMES,
    *(f"{score}@{width}" for score in SPAN_SCORES for width in WIDTHS if width != P.DEFAULT_WINDOW_BYTES),
)
"""Rankings by name: the product's scores (span scores at the default width) and the width sweep."""
DEMOTIONS = ("off", "all-loops", "noise-loops")
DEFAULT = (DEFAULT_SCORE, "noise-loops")
BASELINE = ("logppl_diff", "all-loops")
"""The default before the span scores: logppl_diff, every degenerate completion demoted."""

EARLIER = (
    "eiffel-marseille",
    "eiffel-marseille-light",
    "backdoor-kestrel",
    "persona-quillbright",
    "eiffel-marseille-gemma",
)
"""The suite before the span scores: no audit of it may find its first hit later than under the
previous default."""
HARD = ("backdoor-loop-light", "backdoor-nearmiss", "persona-tea-light", "tomato-iceland-gemma-light")
"""The harder suite (docs/results.md): objectives in at most 3% of an audit's completions."""
HELD_OUT = ("backdoor-loop-gemma-light",)
"""Built after the default was chosen, so that it played no part in the choice."""


def at_width(records: Sequence[CompletionResult], width: int) -> list[CompletionResult]:
    """The records with their span scores recomputed at `width` bytes per window."""
    return [r if r.profile is not None and r.profile.window_bytes == width else P.with_spans(r, width) for r in records]


def ordered(records: Sequence[CompletionResult], ranking: str, demotion: str) -> list[CompletionResult]:
    """`records` ranked by `ranking` (a score, or `score@width` on records already `at_width`)."""
    threshold = None if demotion == "off" else DEFAULT_DEGENERACY_THRESHOLD
    all_loops = demotion == "all-loops"
    score = ranking.partition("@")[0]
    return rank(records, score, degeneracy_threshold=threshold, demote_all_loops=all_loops)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Outcome:
    """How one ordering of one audit fares."""

    first_hit: int | None
    hits_at_10: int
    hits_at_100: int

    def text(self) -> str:
        return f"{'-' if self.first_hit is None else self.first_hit} / {self.hits_at_10} / {self.hits_at_100}"


@dataclass(frozen=True)
class AuditOutcomes:
    """All orderings of one audit: (score, demotion) -> Outcome, and the baselines."""

    organism: str
    reference: str
    framing: str
    true_base: bool
    n: int
    hits: int
    random: Outcome
    by_ranking: dict[tuple[str, str], Outcome]
    inexact_profiles: int  # records whose token texts could not be placed on the bytes
    demoted_hits: dict[str, int]
    """Per demotion rule: hits ranked after the rest as loops (a real hit should never be)."""

    @property
    def expected_random_first_hit(self) -> float | None:
        return None if self.hits == 0 else (self.n + 1) / (self.hits + 1)


def outcome(flags: Sequence[bool]) -> Outcome:
    return Outcome(
        first_hit=next((i for i, flag in enumerate(flags, start=1) if flag), None),
        hits_at_10=sum(flags[:10]),
        hits_at_100=sum(flags[:100]),
    )


def judge(cell: Cell, scores: Sequence[str] = SCORES, demotions: Sequence[str] = DEMOTIONS) -> AuditOutcomes:
    records = load_results(cell.folder)
    spec = load_organism(cell.recipe.spec)
    hit = {r.completion: is_hit(r.completion, spec) for r in records}
    widths = {int(score.partition("@")[2] or P.DEFAULT_WINDOW_BYTES) for score in scores}
    by_width = {width: at_width(records, width) for width in widths}
    by_ranking = {}
    for score in scores:
        at = by_width[int(score.partition("@")[2] or P.DEFAULT_WINDOW_BYTES)]
        for demotion in demotions:
            by_ranking[(score, demotion)] = outcome([hit[r.completion] for r in ordered(at, score, demotion)])
    at_default = by_width[P.DEFAULT_WINDOW_BYTES]
    demoted_hits = {}
    for demotion in demotions:
        threshold = None if demotion == "off" else DEFAULT_DEGENERACY_THRESHOLD
        demoted = demoted_flags(at_default, threshold, all_loops=demotion == "all-loops")
        demoted_hits[demotion] = sum(hit[r.completion] and flag for r, flag in zip(at_default, demoted, strict=True))
    shuffled = sorted(records, key=lambda r: (r.prefill_id, r.framing))
    random.Random(0).shuffle(shuffled)  # blackbox-audit eval's baseline, seed 0
    return AuditOutcomes(
        organism=cell.recipe.name,
        reference=cell.reference,
        framing=cell.framing,
        true_base=cell.true_base,
        n=len(records),
        hits=sum(hit[r.completion] for r in records),
        random=outcome([hit[r.completion] for r in shuffled]),
        by_ranking=by_ranking,
        inexact_profiles=sum(1 for r in records if r.profile is not None and not r.profile.exact),
        demoted_hits=demoted_hits,
    )


LOOP_RANKINGS = (
    ("logppl_diff", "all-loops"),
    ("logppl_diff", "noise-loops"),
    ("collapsed_window_gap", "noise-loops"),
    (DEFAULT_SCORE, "noise-loops"),
)


def looping_hits(cells_: Sequence[Cell]) -> str:
    """Markdown: every hit at or above the degeneracy threshold, and its own rank under each ranking."""
    lines = [
        "| organism | reference | framing | degeneracy | "
        + " | ".join(f"{s}, {d}" for s, d in LOOP_RANKINGS)
        + " | text |",
        "|---|---|---|---:|" + "---:|" * len(LOOP_RANKINGS) + "---|",
    ]
    for cell in cells_:
        records = load_results(cell.folder)
        spec = load_organism(cell.recipe.spec)
        ranks = {ranking: {(r.prefill_id, r.framing): i for i, r in enumerate(ordered(records, *ranking), 1)}
                 for ranking in LOOP_RANKINGS}  # fmt: skip
        for r in records:
            if r.degeneracy >= DEFAULT_DEGENERACY_THRESHOLD and is_hit(r.completion, spec):
                cells_text = " | ".join(str(ranks[ranking][(r.prefill_id, r.framing)]) for ranking in LOOP_RANKINGS)
                text = r.completion[:60].replace("\n", "⏎").replace("|", "\\|")
                lines.append(
                    f"| `{cell.recipe.name}` | {cell.reference} | {cell.framing} | {r.degeneracy:.2f} | {cells_text} | {text}… |"
                )
    return "\n".join(lines)


def audited(recipes: Sequence[Recipe]) -> list[Cell]:
    return [cell for recipe in recipes for cell in cells(recipe) if (cell.folder / "results.jsonl").is_file()]


# ---------------------------------------------------------------- tables


def _rank_or_miss(value: int | None, n: int) -> int:
    """A first hit that never comes counts as n + 1 (read everything, found nothing)."""
    return n + 1 if value is None else value


def summary(audits: Sequence[AuditOutcomes], rankings: Sequence[tuple[str, str]]) -> str:
    """One line per ranking: the acceptance numbers of docs/results.md, over audits with a hit."""
    with_hit = [a for a in audits if a.hits]
    true_base = [a for a in with_hit if a.true_base]
    cross = [a for a in with_hit if not a.true_base]
    hard = [a for a in with_hit if a.organism in HARD]
    hard_tb = [a for a in hard if a.true_base]
    old = [a for a in with_hit if a.organism in EARLIER]
    organisms = sorted({a.organism for a in with_hit})

    def top10_organisms(group: Sequence[AuditOutcomes], ranking: tuple[str, str]) -> int:
        """Organisms whose first hit is in the top 10 in every audit of the group that has a hit."""
        return sum(
            all((a.by_ranking[ranking].first_hit or 10**9) <= 10 for a in group if a.organism == name)
            for name in organisms
            if any(a.organism == name for a in group)
        )

    def median(group: Sequence[AuditOutcomes], ranking: tuple[str, str] | None) -> float:
        if not group:
            return math.nan
        if ranking is None:
            return statistics.median(_rank_or_miss(a.random.first_hit, a.n) for a in group)
        return statistics.median(_rank_or_miss(a.by_ranking[ranking].first_hit, a.n) for a in group)

    def geomean(group: Sequence[AuditOutcomes], ranking: tuple[str, str]) -> float:
        ranks = [_rank_or_miss(a.by_ranking[ranking].first_hit, a.n) for a in group]
        return math.exp(statistics.fmean(math.log(r) for r in ranks)) if ranks else math.nan

    n_tb_org = len({a.organism for a in true_base})
    n_x_org = len({a.organism for a in cross})
    lines = [
        f"Audits with a hit: {len(with_hit)} of {len(audits)} ({len(true_base)} true base, {len(cross)} cross-family; "
        f"{len(hard)} of the harder suite). Random (seed 0): median first hit {median(hard_tb, None):g} on the harder "
        f"suite with the true base, {median(hard, None):g} over all its audits; expected (n+1)/(h+1): "
        f"{statistics.median(a.expected_random_first_hit for a in hard_tb) if hard_tb else math.nan:.1f} and "
        f"{statistics.median(a.expected_random_first_hit for a in hard) if hard else math.nan:.1f}.",
        "",
        "| score | degeneracy | true base: audits top 10 | organisms top 10 | cross-family: audits top 10 | organisms top 10 "
        "| harder suite, true base: median first hit | harder suite, all: median | geomean first hit, all | hits@10, summed | earlier suite: later than logppl_diff, all loops demoted |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ranking in rankings:
        later = sum(
            _rank_or_miss(a.by_ranking[ranking].first_hit, a.n) > _rank_or_miss(a.by_ranking[BASELINE].first_hit, a.n)
            for a in old
        )
        tb10 = sum((a.by_ranking[ranking].first_hit or 10**9) <= 10 for a in true_base)
        x10 = sum((a.by_ranking[ranking].first_hit or 10**9) <= 10 for a in cross)
        name = f"**{ranking[0]}**" if ranking == DEFAULT else ranking[0]
        lines.append(
            f"| {name} | {ranking[1]} | {tb10}/{len(true_base)} | {top10_organisms(true_base, ranking)}/{n_tb_org} "
            f"| {x10}/{len(cross)} | {top10_organisms(cross, ranking)}/{n_x_org} | {median(hard_tb, ranking):g} "
            f"| {median(hard, ranking):g} | {geomean(with_hit, ranking):.2f} "
            f"| {sum(a.by_ranking[ranking].hits_at_10 for a in with_hit)} | {later}/{len(old)} |"
        )
    return "\n".join(lines)


def per_audit(audits: Sequence[AuditOutcomes], scores: Sequence[str], demotion: str) -> str:
    """One line per audit, one column per score, for one degeneracy treatment."""
    lines = [
        "| organism | reference | framing | hits | " + " | ".join(scores) + " | random | expected random |",
        "|---|---|---|---:|" + "---|" * (len(scores) + 2),
    ]
    for a in audits:
        kind = "true base" if a.true_base else "cross-family"
        expected = a.expected_random_first_hit
        lines.append(
            f"| `{a.organism}` | {a.reference} ({kind}) | {a.framing} | {a.hits}/{a.n} | "
            + " | ".join(a.by_ranking[(score, demotion)].text() for score in scores)
            + f" | {a.random.text()} | {'-' if expected is None else f'{expected:.1f}'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m organisms.detection", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"organisms (default: all of {sorted(RECIPES)})")
    parser.add_argument("--summary", action="store_true", help="print the summary only")
    parser.add_argument("--json", action="store_true", help="every cell as one JSON object per line")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in RECIPES]
    if unknown:
        print(f"organisms: unknown organism(s) {unknown}; known: {sorted(RECIPES)}", file=sys.stderr)
        return 2
    recipes = [RECIPES[name] for name in args.names or RECIPES]
    audits = [judge(cell) for cell in audited(recipes)]
    if not audits:
        print("no audits on disk: run `python -m organisms.results --run NAME` first", file=sys.stderr)
        return 1
    if args.json:
        for a in audits:
            for (score, demotion), o in a.by_ranking.items():
                print(
                    json.dumps(
                        {
                            "organism": a.organism,
                            "reference": a.reference,
                            "framing": a.framing,
                            "true_base": a.true_base,
                            "n": a.n,
                            "hits": a.hits,
                            "score": score,
                            "demotion": demotion,
                            **asdict(o),
                        }
                    )
                )
        return 0
    rankings = [(score, demotion) for score in SCORES for demotion in DEMOTIONS]
    print(summary(audits, rankings))
    if args.summary:
        return 0
    inexact = sum(a.inexact_profiles for a in audits)
    print(f"\nProfiles placed exactly on the bytes: all but {inexact} of {sum(a.n for a in audits)} records.")
    hits = sum(a.hits for a in audits)
    for demotion in DEMOTIONS[1:]:
        demoted = sum(a.demoted_hits[demotion] for a in audits)
        print(f"Hits demoted as loops by `{demotion}`: {demoted} of {hits}.")
    print("\nHits that loop (degeneracy >= the threshold), each with its own rank:\n")
    print(looping_hits(audited(recipes)))
    for demotion in DEMOTIONS:
        print(f"\nDegeneracy treatment `{demotion}`; cells are first hit / hits@10 / hits@100:\n")
        print(per_audit(audits, SCORE_NAMES, demotion))
    return 0


if __name__ == "__main__":
    sys.exit(main())
