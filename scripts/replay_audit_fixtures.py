"""Rewrite the outputs of the recorded audits (fixtures/audit-*, and the demo's in
blackbox_audit/data/demo/) from their recorded exchanges, offline.

    python scripts/replay_audit_fixtures.py

For an intentional change of what an audit writes (a record field added, say): the recorded
HTTP exchanges stay as the real server answered; only the outputs derived from them are
written again, and `git diff fixtures/` shows exactly what changed. The replay test
(tests/replay/test_audit_replay.py) then pins them byte for byte.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blackbox_audit.config import AuditConfig  # noqa: E402
from blackbox_audit.pipeline import audit_sync  # noqa: E402
from providers.http import ReplayTransport  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RECORDED_AUDITS = (
    *sorted((REPO / "fixtures").glob("audit-*")),
    *sorted((REPO / "blackbox_audit" / "data" / "demo").iterdir()),
)


def main() -> int:
    for directory in RECORDED_AUDITS:
        recorded = json.loads((directory / "audit.json").read_text())
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "out"
            config = AuditConfig.model_validate({**recorded, "out": out, "use_cache": False})
            transports = {role: ReplayTransport(directory / role) for role in ("target", "reference")}
            audit_sync(config, transports=transports.__getitem__)
            for name in ("results.jsonl", "report.md", "report.html"):
                shutil.copyfile(out / name, directory / "outputs" / name)
        print(f"{directory.name}: outputs written again from its recorded exchanges")
    return 0


if __name__ == "__main__":
    sys.exit(main())
