"""Print, as JSON, what `sam build --use-container` gives each layer's build container, computed by
SAM CLI's own code (run with the tools venv): the host folders it mounts and where, and the build
request lambda-builders runs inside (source, scratch, artifacts and manifest paths, options).

    .tools/bin/python scripts/sam_container_build.py [template.yaml] [Name=Value ...]

No Docker is needed: SAM CLI's ApplicationBuilder builds each layer with a container manager that
records the container it is asked to run and stops there. The mounts and the request are read from
SAM CLI's Container object (`_host_dir`, `_additional_volumes`, `_entrypoint`: private, but they are
exactly what it passes to Docker, samcli/local/docker/container.py; going through them is the point,
as scripts/sam_local_env.py does with `_make_env_vars`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class _Recorded(Exception):
    pass


class _RecordingContainerManager:
    def __init__(self) -> None:
        self.containers: list[Any] = []

    def run(self, container: Any, context: Any = None) -> None:
        self.containers.append(container)
        raise _Recorded

    def stop(self, container: Any) -> None:
        pass


def container_builds(template: Path, parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    from samcli.lib.build.app_builder import ApplicationBuilder
    from samcli.lib.providers.sam_layer_provider import SamLayerProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(template), parameter_overrides=parameters)
    builds: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for layer in SamLayerProvider(stacks).get_all():
            manager = _RecordingContainerManager()
            builder = ApplicationBuilder(
                None,  # type: ignore[arg-type]  # only one layer is built, by hand below
                build_dir=os.path.join(scratch, "build"),
                base_dir=str(template.parent),
                cache_dir=os.path.join(scratch, "cache"),
                container_manager=manager,  # type: ignore[arg-type]
            )
            with contextlib.suppress(_Recorded):
                builder._build_layer(
                    layer.name,
                    layer.codeuri,
                    layer.build_method,
                    layer.compatible_runtimes,
                    layer.build_architecture,
                    os.path.join(scratch, "artifacts", layer.name),
                    layer_metadata=layer.metadata,
                )
            (container,) = manager.containers
            request = json.loads(container._entrypoint[-1])["params"]
            mounts = {container._host_dir: "/tmp/samcli/source"}  # noqa: S108 - SAM CLI's own container path
            mounts.update({host: volume["bind"] for host, volume in (container._additional_volumes or {}).items()})
            builds[layer.name] = {"mounts": mounts, "request": request}
    return builds


def main(argv: list[str]) -> int:
    template = Path(argv[0]) if argv else ROOT / "template.yaml"
    parameters = dict(pair.split("=", 1) for pair in argv[1:])
    os.environ.update(SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    json.dump(container_builds(template.resolve(), parameters), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
