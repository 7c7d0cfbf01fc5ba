"""Print, as JSON, the source hash `sam build --cached` keeps for each layer, computed by SAM CLI's own
code (run with the tools venv): the layer's CodeUri as SAM resolves it, hashed as SAM's cached build
strategy hashes it (samcli/lib/build/build_strategy.py, CachedBuildStrategy): a layer is rebuilt
only when this changes.

    .tools/bin/python scripts/sam_build_cache.py [template.yaml] [Name=Value ...]
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def layer_source_hashes(template: pathlib.Path, parameters: dict[str, str]) -> dict[str, str]:
    from samcli.lib.providers.sam_layer_provider import SamLayerProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
    from samcli.lib.utils.hash import dir_checksum

    stacks, _ = SamLocalStackProvider.get_stacks(str(template), parameter_overrides=parameters)
    hashes = {}
    for layer in SamLayerProvider(stacks).get_all():
        code_dir = str(pathlib.Path(template.parent, layer.codeuri).resolve())  # as CachedBuildStrategy does
        hashes[layer.name] = dir_checksum(code_dir, ignore_list=[".aws-sam"], hash_generator=hashlib.sha256())
    return hashes


def main(argv: list[str]) -> int:
    template = pathlib.Path(argv[0]) if argv else ROOT / "template.yaml"
    parameters = dict(pair.split("=", 1) for pair in argv[1:])
    os.environ.update(SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    json.dump(layer_source_hashes(template.resolve(), parameters), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
