"""`python -m simulation` (with `tests` on PYTHONPATH, as `make simulate` runs it)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if os.environ.get("PYTHONHASHSEED") != "0":
    # Set iteration order is part of a replay: every run, and every replay, hashes strings alike.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, "-m", "simulation", *sys.argv[1:]])

for path in (ROOT / "tests", ROOT, ROOT / "layers" / "payments"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from simulation.cli import main  # noqa: E402

sys.exit(main())
