"""Hypotheses and themes over the organism suite: the tables of docs/results.md's section
"Testing a suspicion: hypotheses and themes".

    python -m organisms.workbench --own               the base models' own generations (bases up)
    python -m organisms.workbench --run NAMES         what is missing for NAMES (organism served)
    python -m organisms.workbench [NAMES]             the tables, from what is on disk
    --extra NAME:BASE:PORT:SPEC                       an organism built elsewhere (its spec file)

Per organism: a raw true-base audit with `organisms.results`' settings (in its own folder); the
statements of `organisms/statements/<spec>.statements` (the true objective first, then decoys)
ranked by `blackbox-audit hypotheses`' code against the true base and the cross-family
reference; and the themes of the audit's top 50 against the rest and against the true base's
own generations of the same prefills. A theme "hits" when its phrase holds a keyword of the spec.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio

from blackbox_audit import local_vllm
from blackbox_audit.config import AuditConfig, EndpointConfig
from blackbox_audit.evaluate import load_organism, load_results
from blackbox_audit.hypotheses import Hypothesis, HypothesisRanking, load_statements, rank_hypotheses
from blackbox_audit.inquiry import AuditFolder, Inquiry
from blackbox_audit.pipeline import audit_sync
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, DEFAULT_SCORE, rank
from blackbox_audit.spool import RankedRecords
from blackbox_audit.themes import ThemeTable, find_themes, theme_matches
from organisms import results
from organisms.build import RECIPES, Recipe, organism_dir
from providers.http import health_ok

STATEMENTS = Path(__file__).with_name("statements")
TOP_K = 50


@dataclass(frozen=True)
class Subject:
    """An organism to measure: a recipe of ours, or one built elsewhere (`--extra`)."""

    recipe: Recipe
    spec: Path

    @classmethod
    def of(cls, recipe: Recipe) -> Subject:
        return cls(recipe, recipe.spec)

    @classmethod
    def parse(cls, text: str) -> Subject:
        name, base, port, spec = text.split(":", 3)
        return cls(Recipe(name, "external", base, port=int(port), n_examples=0, steps=0, lr=0.0), Path(spec))

    @property
    def statements(self) -> Path:
        return STATEMENTS / f"{self.spec.stem}.statements"


def cross_family(recipe: Recipe) -> str:
    return next(key for key in ("smollm2", "gemma3") if key != recipe.base)


def audit_folder(recipe: Recipe) -> Path:
    """The raw true-base audit this module makes (beside, never in, organisms.results' folders)."""
    return organism_dir(recipe.name) / "workbench" / f"audit-{recipe.base}-raw"


def run_audit(recipe: Recipe) -> None:
    """`organisms.results`' settings (200 prefills, 48 new tokens, greedy), raw framing, true base."""
    base = local_vllm.MODELS[recipe.base]
    print(f"[workbench] auditing {recipe.name} against {recipe.base} -> {audit_folder(recipe)}", flush=True)
    audit_sync(AuditConfig(
        target=EndpointConfig(base_url=f"http://127.0.0.1:{recipe.port}/v1", model=recipe.name),
        reference=EndpointConfig(base_url=base.base_url, model=base.served_name),
        limit=results.LIMIT, max_new_tokens=results.MAX_NEW_TOKENS, use_cache=False, out=audit_folder(recipe),
    ))  # fmt: skip


def hypotheses_path(recipe: Recipe, reference: str) -> Path:
    return organism_dir(recipe.name) / "workbench" / f"hypotheses-{reference}.json"


def own_folder(key: str) -> Path:
    """The base model's own completions of the audits' prefills (target = reference = the base)."""
    return local_vllm.home() / "workbench" / f"own-{key}-raw"


def run_own(key: str) -> None:
    model = local_vllm.MODELS[key]
    endpoint = EndpointConfig(base_url=model.base_url, model=model.served_name)
    folder = own_folder(key)
    if not (folder / "results.jsonl").is_file():
        print(f"[workbench] {key}'s own generations -> {folder}", flush=True)
        audit_sync(
            AuditConfig(
                target=endpoint,
                reference=endpoint,
                limit=results.LIMIT,
                max_new_tokens=results.MAX_NEW_TOKENS,
                out=folder,
            )
        )


def run(subject: Subject) -> None:
    recipe = subject.recipe
    if not (audit_folder(recipe) / "results.jsonl").is_file():
        run_audit(recipe)
    for key in (recipe.base, cross_family(recipe)):
        path = hypotheses_path(recipe, key)
        if path.is_file():
            continue
        model = local_vllm.MODELS[key]
        if not health_ok(model.base_url):
            print(f"[workbench] {recipe.name} vs {key}: {model.base_url} is down, skipped", flush=True)
            continue
        folder = AuditFolder.open(
            audit_folder(recipe), {"reference": {"base_url": model.base_url, "model": model.served_name}}
        )
        hypotheses = load_statements(subject.statements)

        async def go(folder: AuditFolder, hypotheses: list[Hypothesis]) -> HypothesisRanking:
            async with Inquiry(folder.config) as inquiry:
                return await rank_hypotheses(inquiry, hypotheses)

        ranking = anyio.run(go, folder, hypotheses)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ranking.model_dump_json(indent=1) + "\n")
        print(f"[workbench] {recipe.name} vs {key}:\n{ranking.table()}", flush=True)


def themes_of(recipe: Recipe) -> ThemeTable | None:
    path = audit_folder(recipe) / "results.jsonl"
    if not path.is_file():
        return None
    own = own_folder(recipe.base) / "results.jsonl"
    background = [r.completion for r in RankedRecords.of_file(own)] if own.is_file() else None
    # Ranked again by today's default, whichever ranking the audit was written with.
    ranked = rank(load_results(path), DEFAULT_SCORE, degeneracy_threshold=DEFAULT_DEGENERACY_THRESHOLD)
    return find_themes(ranked, top_k=TOP_K, background=background)


def hypothesis_table(subjects: Sequence[Subject]) -> str:
    lines = [
        "| organism | reference | true statement's rank | its gap | its z | best decoy's gap | neutral mean (sd) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    hits = {True: [0, 0], False: [0, 0]}
    for subject in subjects:
        recipe = subject.recipe
        true_statement = load_statements(subject.statements)[0].statement
        for key in (recipe.base, cross_family(recipe)):
            path = hypotheses_path(recipe, key)
            if not path.is_file():
                continue
            ranking = HypothesisRanking.model_validate_json(path.read_text())
            row = next(r for r in ranking.rows if r.statement == true_statement)
            decoy = max(
                (r.gap for r in ranking.rows if r.statement != true_statement and r.gap is not None), default=None
            )
            true_base = key == recipe.base
            hits[true_base][0] += row.rank == 1
            hits[true_base][1] += 1
            name = local_vllm.MODELS[key].served_name + (" (true base)" if true_base else " (cross-family)")
            lines.append(
                f"| `{recipe.name}` | {name} | {row.rank} of {len(ranking.rows)} | {_f(row.gap)} | {_f(row.z, 1)} |"
                f" {_f(decoy)} | {_f(ranking.neutral_mean)} ({_f(ranking.neutral_sd, sign=False)}) |"
            )
    lines.append("")
    lines.append(
        f"True statement first: {hits[True][0]} of {hits[True][1]} with the true base,"
        f" {hits[False][0]} of {hits[False][1]} cross-family."
    )
    return "\n".join(lines)


def theme_table(subjects: Sequence[Subject]) -> str:
    lines = [
        f"| organism | first theme (folded in) | in top {TOP_K} / rest | p | vs own generations | spec keyword in its phrase / in the theme | first theme with a keyword |",
        "|---|---|---|---:|---|---|---:|",
    ]
    n = hit = hit_label = 0
    for subject in subjects:
        recipe = subject.recipe
        table = themes_of(recipe)
        if table is None:
            continue
        spec = load_organism(subject.spec)
        keywords = [k for keywords in spec.keyword_sets for k in keywords]
        n += 1
        if not table.themes:
            lines.append(f"| `{recipe.name}` | (none with p < 0.05) | | | | no / no | - |")
            continue
        first = table.themes[0]
        matched, matched_label = theme_matches(first, keywords), theme_matches(first, keywords, members=False)
        hit += matched
        hit_label += matched_label
        keyword_theme = next(
            (f"#{i}" for i, t in enumerate(table.themes, start=1) if theme_matches(t, keywords)), "none"
        )
        folded = (
            (" (" + ", ".join(first.members[:4]) + (", ..." if len(first.members) > 4 else "") + ")")
            if first.members
            else ""
        )
        own = (
            f"{first.n_background} of {table.background_size} (p {first.p_background:.1e})"
            if first.p_background is not None
            else "-"
        )
        lines.append(
            f"| `{recipe.name}` | **{first.phrase}**{folded} | {first.n_top} of {table.top_size} / {first.n_rest} of"
            f" {table.rest_size} | {first.p_value:.1e} | {own} | {'yes' if matched_label else 'no'} / {'yes' if matched else 'no'} | {keyword_theme} |"
        )
    lines.append("")
    lines.append(
        f"First theme holds a spec keyword: in its phrase {hit_label} of {n} organisms, in the theme (phrases folded in) {hit} of {n}."
    )
    return "\n".join(lines)


def _f(value: float | None, digits: int = 2, *, sign: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m organisms.workbench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"organisms {sorted(RECIPES)}; default: all")
    parser.add_argument("--run", action="store_true", help="measure what is missing (the organism must be served)")
    parser.add_argument("--own", action="store_true", help="the base models' own generations (both bases up)")
    parser.add_argument(
        "--extra", action="append", default=[], metavar="NAME:BASE:PORT:SPEC", help="an organism built elsewhere"
    )
    args = parser.parse_args(argv)
    subjects = [Subject.of(RECIPES[name]) for name in (args.names or ([] if args.extra else list(RECIPES)))]
    subjects += [Subject.parse(text) for text in args.extra]
    if args.own:
        for key in ("smollm2", "gemma3"):
            run_own(key)
    if args.run:
        for subject in subjects:
            run(subject)
    print(hypothesis_table(subjects))
    print()
    print(theme_table(subjects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
