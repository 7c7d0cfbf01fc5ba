"""The JSON Schemas of the records the shop writes (the data contract), generated from the models that
read them (`halum_payments.records`), so that there is one definition:

    python -m local.schemas            # (re)write schemas/records/<record>.v1.json
    python -m local.schemas --check    # exit 1 if a file is not what this script writes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "schemas" / "records"
if str(ROOT / "layers" / "payments") not in sys.path:
    sys.path.insert(0, str(ROOT / "layers" / "payments"))  # the models live in the functions' layer

from halum_payments.records import CONTRACTS, VERSION, json_schema  # noqa: E402


def documents() -> dict[Path, str]:
    """File -> its text, for every record's contract."""
    return {
        FOLDER / f"{name}.v{VERSION}.json": json.dumps(json_schema(model), indent=2) + "\n"
        for name, model in CONTRACTS.values()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the files are current")
    args = parser.parse_args(argv)
    stale = [path for path, text in documents().items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(FOLDER.parent.parent)} is stale: run `make schemas`", file=sys.stderr)
        return 1 if stale else 0
    FOLDER.mkdir(parents=True, exist_ok=True)
    for path, text in documents().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
