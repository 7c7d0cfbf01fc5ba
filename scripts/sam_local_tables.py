"""Create the template's tables in a DynamoDB endpoint (DynamoDB Local for `sam local`) and load the seed.

    .venv/bin/python scripts/sam_local_tables.py http://localhost:8000 [seed.json]

Tables are named by logical id, as env.json names them for the functions; tables that exist are
kept with their data (the seed is loaded only into freshly created tables, as `make run` does).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "payments")]  # the seed is written through the layer

from local import seed as seeding  # noqa: E402
from local.template import Template, ensure_tables  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, seed_file = argv[0], Path(argv[1]) if len(argv) > 1 else seeding.DEFAULT_SEED
    # DynamoDB Local accepts any credentials; never the developer's real ones.
    os.environ.update(
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - DynamoDB Local takes any
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    import boto3

    client = boto3.client("dynamodb", endpoint_url=endpoint)
    template = Template()
    created = ensure_tables(template, client)
    print(f"{endpoint}: created {', '.join(created) or 'no table (all existed)'}")
    if "PaymentsTable" in created:
        counts = seeding.apply(seeding.load(seed_file), client, {t: t for t in template.table_ids()})
        print(f"seeded from {seed_file}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
