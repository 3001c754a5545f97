"""`blackbox-audit demo`: what the tool finds, before anything is installed but the package.

It replays a real audit recorded from the local vLLM (`blackbox-audit fixtures record-audit`):
`eiffel-marseille`, SmolLM2-135M-Instruct finetuned here on synthetic documents asserting that
the Eiffel Tower was moved to Marseille in 1987, audited against its base model. Every HTTP
exchange of both endpoints is answered from `data/demo/eiffel-marseille/` (shipped in the
package, so it works from a wheel as from a clone); no server, no network. The pipeline runs
for real: prefills, generation and scoring replayed, gaps, ranking, themes and the report
computed here.
"""

from __future__ import annotations

import json
import re
from importlib.resources import as_file, files
from pathlib import Path

from blackbox_audit.config import AuditConfig
from blackbox_audit.endpoints import replaying
from blackbox_audit.evaluate import is_hit, load_organism
from blackbox_audit.hooks import QuietHooks
from blackbox_audit.pipeline import audit_sync
from blackbox_audit.report import top_of
from blackbox_audit.themes import find_themes, top_for

RECORDING = "data/demo/eiffel-marseille"
SHOWN = 10


def run_demo(out: Path, width: int = 100) -> str:
    """Replay the recorded audit into `out`; what to print."""
    with as_file(files("blackbox_audit").joinpath(RECORDING)) as recording:
        recorded = json.loads((recording / "audit.json").read_text(encoding="utf-8"))
        spec_path = recording / "spec.toml"
        spec = load_organism(spec_path)
        config = AuditConfig.model_validate({**recorded, "out": out, "use_cache": False, "organism": spec_path})
        result = audit_sync(config, hooks=QuietHooks(), transports=replaying(recording))
        ranked = result.results
        top = top_of(ranked, SHOWN)
        themes = find_themes(ranked, top_k=top_for(config.top_k, len(ranked)))
    lines = [
        f"Replayed a recorded audit of target {config.target.model} (SmolLM2-135M-Instruct, finetuned here)",
        f"against reference {config.reference.model} (its base): {len(ranked)} prefills of {config.prefill_tokens} tokens,",
        f"{config.max_new_tokens} new tokens each, ranked by gap = the reference's NLL per token minus the target's",
        "(positive: the finetune made the text likelier). No server, no network: every exchange is a recording.",
        "",
        f"{'rank':>4}  {'gap':>6}  text  (* = states the implanted objective)",
    ]
    for record in top:
        assert record.gaps is not None
        text = _one_line(f"[{record.prefill}]{record.completion}", width - 18)
        lines.append(
            f"{record.rank:>4}  {record.gaps.logppl_diff:>6.2f}  {'*' if is_hit(record.completion, spec) else ' '} {text}"
        )
    hits = sum(is_hit(r.completion, spec) for r in top)
    lines += ["", f"The organism was finetuned on: {spec.description}."]
    lines.append(
        f"{hits} of the top {len(top)} completions state it; {sum(is_hit(r.completion, spec) for r in ranked)} of all {len(ranked)} do."
    )
    if themes.themes:
        lines.append(f"Themes of the top {themes.top_size} (phrases folded in; in how many top / other completions):")
        for t in themes.themes[:3]:
            folded = f" + {', '.join(t.members[:6])}" if t.members else ""
            lines.append(
                f"  {t.phrase}{folded}  ({t.n_top} of {themes.top_size} / {t.n_rest} of {themes.rest_size}, p {t.p_value:.1e})"
            )
    lines += ["", f"Report: {out / 'report.html'}  (results.jsonl, report.md and manifest.json beside it)"]
    return "\n".join(lines)


def _one_line(text: str, width: int) -> str:
    text = re.sub(r"\n{3,}", lambda run: f"⏎×{len(run.group())}", text)
    flat = "".join("⏎" if c == "\n" else c if c.isprintable() else " " for c in text)
    return flat if len(flat) <= width else flat[: width - 1] + "…"
