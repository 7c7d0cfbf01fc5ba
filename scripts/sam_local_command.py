"""Print, as JSON, what a `sam local invoke` / `sam local start-api` command line resolves to in SAM
CLI's own code (run with the tools venv): the template it reads, the parameter values (the command
line's, else samconfig.toml's), and the architecture each function would run on.

    .tools/bin/python scripts/sam_local_command.py local invoke ListPaymentsFunction --event e.json ...

SAM CLI parses the arguments and samconfig.toml exactly as `sam` does (its click commands, its
configuration provider); only the last step, which starts Docker, is replaced (the commands' `do_cli`,
which receives the resolved options) by one that records them. The functions' architectures come
from SamFunctionProvider, as `sam local` resolves them (parameters applied).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

COMMANDS = {
    ("local", "invoke"): "samcli.commands.local.invoke.cli",
    ("local", "start-api"): "samcli.commands.local.start_api.cli",
}


def resolve(argv: list[str]) -> dict[str, Any]:
    import importlib

    from samcli.cli.main import cli as sam
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    module = importlib.import_module(COMMANDS[(argv[0], argv[1])])
    original = module.do_cli
    names = original.__code__.co_varnames[1 : original.__code__.co_argcount]  # after ctx
    recorded: dict[str, Any] = {}

    def record(ctx: Any, *args: Any, **kwargs: Any) -> None:
        recorded.update(dict(zip(names, args, strict=False)), **kwargs)

    module.do_cli = record
    try:
        sam.main(args=argv, prog_name="sam", standalone_mode=False)
    finally:
        module.do_cli = original
    template, overrides = recorded["template"], dict(recorded.get("parameter_overrides") or {})
    stacks, _ = SamLocalStackProvider.get_stacks(template, parameter_overrides=overrides)
    functions = {
        function.name: function.architectures[0] if function.architectures else "x86_64"
        for function in SamFunctionProvider(stacks).get_all()
    }
    return {"template": template, "parameter_overrides": overrides, "architectures": functions}


def main(argv: list[str]) -> int:
    os.environ.update(SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    json.dump(resolve(argv), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
