"""python -m blackbox_audit.local_vllm setup|start|stop|status|up [KEYS...]"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from blackbox_audit.local_vllm.install import setup
from blackbox_audit.local_vllm.models import DEFAULT_KEYS, MODELS
from blackbox_audit.local_vllm.server import start, status, stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blackbox_audit.local_vllm",
        description="Set up and serve small real models on local vLLM CPU servers.",
    )
    parser.add_argument("command", choices=["setup", "start", "stop", "status", "up"])
    parser.add_argument("keys", nargs="*", metavar="KEY", help=f"models {sorted(MODELS)}; default {list(DEFAULT_KEYS)}")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for servers (start, up)")
    args = parser.parse_args(argv)
    keys: list[str] = args.keys or list(DEFAULT_KEYS)
    try:
        if args.command in ("setup", "up"):
            setup(keys)
        if args.command in ("start", "up"):
            for key, url in start(keys, timeout_s=args.timeout).items():
                print(f"{key}\t{MODELS[key].served_name}\t{url}")
        if args.command == "stop":
            stop(args.keys or None)  # none named: every server we started
        if args.command == "status":
            for row in status():
                state = "healthy" if row.healthy else ("starting" if row.pid else "down")
                setup_state = "set up" if row.set_up else "not set up"
                print(f"{row.key}\t{row.served_name}\t{row.base_url}\t{state}\tpid={row.pid}\t{setup_state}")
    except (RuntimeError, ValueError, OSError) as error:
        print(f"local-vllm {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
