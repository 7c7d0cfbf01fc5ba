"""Print, as JSON, the environment `sam local invoke` / `start-api` would give each function, computed
by SAM CLI's own code (run with the tools venv): the template's variables as SAM CLI reads them
(parameters resolved, Globals merged), overridden by env.json as `--env-vars` does.

    .tools/bin/python scripts/sam_local_env.py [template.yaml] [env.json]

Nothing runs in Docker and no AWS call is made. `LocalLambdaRunner._make_env_vars` is private to
SAM CLI, but it is the one function each `sam local` invocation calls to build a function's
environment (samcli/commands/local/lib/local_lambda.py); going through it is the point.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resolve(template: Path, env_json: Path) -> dict[str, dict[str, str]]:
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(template))
    provider = SamFunctionProvider(stacks)
    runner = LocalLambdaRunner(
        local_runtime=None,  # type: ignore[arg-type]  # only the environment is computed
        function_provider=provider,
        cwd=str(template.parent),
        real_path=str(template.parent),
        aws_region="us-east-1",
        env_vars_values=json.loads(env_json.read_text()),
    )
    return {function.name: runner._make_env_vars(function).resolve() for function in provider.get_all()}


def main(argv: list[str]) -> int:
    template = Path(argv[0]) if argv else ROOT / "template.yaml"
    env_json = Path(argv[1]) if len(argv) > 1 else ROOT / "env.json"
    os.environ.update(
        AWS_ACCESS_KEY_ID="sam-local",
        AWS_SECRET_ACCESS_KEY="sam-local",  # noqa: S106 - a placeholder
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, SAM_CLI_TELEMETRY="0")
    json.dump(resolve(template, env_json), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
