"""Print an event from events/ as it should be invoked now: Stripe and gateway signatures (and
page cursors) made again by the case's signer in local/make_events.py, with the local secrets
env.json gives the functions (Stripe checks a signature's timestamp against a 300 s tolerance).

    .venv/bin/python scripts/prepare_event.py events/stripe_webhook/session_not_ours.json > event.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "payments")]  # signers mint cursors with the layer's code

from local.make_events import prepare  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0]).resolve()
    name = f"{path.parent.name}/{path.stem}"  # the case name: <function_dir>/<case>
    json.dump(prepare(name, json.loads(path.read_text())), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
