"""Audit the organisms and tabulate detection: the table in docs/results.md.

    python -m organisms.results --run [NAMES]     audit what is missing (servers must be up), then tabulate
    python -m organisms.results [NAMES]           tabulate the audits already on disk

Each organism is audited four times: true base and cross-family reference (the other local
model), raw and chat framing; 200 prefills from the bundled corpus, 48 new tokens, greedy.
Audits live in ``organisms/<name>/audits/<reference>-<framing>/`` under the local-vLLM home.
A cell is **first-hit rank / hits@10 / hits@100**, judged by `blackbox_audit.evaluate`
against the organism's spec. `--run` needs the organism served on its recipe's port
(``python -m organisms.build NAME --serve``) and both base models up
(``blackbox-audit local-vllm up``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blackbox_audit import local_vllm
from blackbox_audit.audit import audit_sync
from blackbox_audit.config import AuditConfig, EndpointConfig
from blackbox_audit.evaluate import EvalReport, evaluate, load_organism, load_results
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, DEFAULT_SCORE
from organisms.build import RECIPES, Recipe, organism_dir

LIMIT = 200
MAX_NEW_TOKENS = 48
FRAMINGS = ("raw", "chat")
SCORES = ("ppl_diff", "logppl_diff", "bpb_diff")


@dataclass(frozen=True)
class Cell:
    recipe: Recipe
    reference: str  # a key of local_vllm.MODELS
    framing: str

    @property
    def folder(self) -> Path:
        return organism_dir(self.recipe.name) / "audits" / f"{self.reference}-{self.framing}"

    @property
    def true_base(self) -> bool:
        return self.reference == self.recipe.base


def cells(recipe: Recipe) -> list[Cell]:
    cross = next(key for key in ("smollm2", "gemma3") if key != recipe.base)
    return [Cell(recipe, reference, framing) for reference in (recipe.base, cross) for framing in FRAMINGS]


def run(cell: Cell) -> None:
    reference = local_vllm.MODELS[cell.reference]
    config = AuditConfig(
        target=EndpointConfig(base_url=f"http://127.0.0.1:{cell.recipe.port}/v1", model=cell.recipe.name),
        reference=EndpointConfig(base_url=reference.base_url, model=reference.served_name),
        framing=cell.framing,
        limit=LIMIT,
        max_new_tokens=MAX_NEW_TOKENS,
        out=cell.folder,
    )
    print(f"[results] auditing {cell.recipe.name} against {cell.reference}, {cell.framing} -> {cell.folder}", flush=True)
    audit_sync(config)


def _cell_text(report: EvalReport, score: str, threshold: float | None) -> str:
    row = next(r for r in report.rows if r.ranking == score and r.degeneracy_threshold == threshold)
    first = "-" if row.first_hit_rank is None else str(row.first_hit_rank)
    return f"{first} / {row.hits_at_10} / {row.hits_at_100}"


def table(recipes: Sequence[Recipe], threshold: float | None) -> str:
    """Markdown: one line per audit found on disk."""
    lines = [
        "| organism | reference | framing | hits | " + " | ".join(SCORES) + " | random |",
        "|---|---|---|---:|" + "---|" * (len(SCORES) + 1),
    ]
    for recipe in recipes:
        spec = load_organism(recipe.spec)
        for cell in cells(recipe):
            if not (cell.folder / "results.jsonl").is_file():
                continue
            report = evaluate(load_results(cell.folder), spec)
            random_row = next(r for r in report.rows if r.ranking == "random")
            kind = "true base" if cell.true_base else "cross-family"
            scores = [_cell_text(report, score, threshold) for score in SCORES]
            default = SCORES.index(DEFAULT_SCORE)
            scores[default] = f"**{scores[default]}**"
            first = "-" if random_row.first_hit_rank is None else str(random_row.first_hit_rank)
            random_cell = f"{first} / {random_row.hits_at_10} / {random_row.hits_at_100}"
            lines.append(
                f"| `{recipe.name}` | {local_vllm.MODELS[cell.reference].served_name} ({kind}) | {cell.framing} | "
                f"{report.n_hits}/{report.n_completions} | " + " | ".join(scores) + f" | {random_cell} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m organisms.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"organisms (default: all of {sorted(RECIPES)})")
    parser.add_argument("--run", action="store_true", help="run the audits that are not on disk yet")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in RECIPES]
    if unknown:
        print(f"organisms: unknown organism(s) {unknown}; known: {sorted(RECIPES)}", file=sys.stderr)
        return 2
    recipes = [RECIPES[name] for name in args.names or RECIPES]
    if args.run:
        for recipe in recipes:
            for cell in cells(recipe):
                if not (cell.folder / "results.jsonl").is_file():
                    run(cell)
    print(f"Degeneracy filter on (>= {DEFAULT_DEGENERACY_THRESHOLD:g}); default ranking `{DEFAULT_SCORE}` in bold:\n")
    print(table(recipes, DEFAULT_DEGENERACY_THRESHOLD))
    print("\nDegeneracy filter off:\n")
    print(table(recipes, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
