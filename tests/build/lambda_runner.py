"""Runs one built function the way Lambda's Python runtime does; driven by test_built_functions.py.

Started as `python3.13 -S lambda_runner.py` with a clean environment (PYTHONDONTWRITEBYTECODE=1,
the function's variables). It lays out sys.path as Lambda does: the function's build folder
(/var/task), the layer (/opt/python and /opt/python/lib/python3.13/site-packages), the runtime's
boto3 (/var/lang/...site-packages), then the standard library, and nothing else: no repository
folder, no virtualenv. It imports the template's Handler (the cold start), then answers one JSON
request per stdin line on a private pipe (what the handler prints goes to stderr, as Lambda sends
it to CloudWatch): {"event": ...} -> {"response": ...} or {"error": ...}. At end of input it reports
every loaded module that came from outside those places.

Standard library only: it must not import anything from the repository.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid

TASK = os.environ["LAMBDA_TASK_ROOT"]
LAYERS = os.environ["RUNNER_LAYERS"].split(os.pathsep)  # built layer folders, merged into /opt on Lambda
RUNTIME = os.environ["RUNNER_RUNTIME_SITE"]  # stands in for the runtime's site-packages (boto3)
HANDLER = os.environ["_HANDLER"]
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"

STDLIB = [p for p in sys.path if p.startswith(sys.base_prefix) and "site-packages" not in p]
LAYER_PATHS = [os.path.join(layer, "python", "lib", VERSION, "site-packages") for layer in LAYERS]
LAYER_PATHS += [os.path.join(layer, "python") for layer in LAYERS]
sys.path[:] = [TASK, *LAYER_PATHS, RUNTIME, *STDLIB]
ALLOWED = tuple(os.path.realpath(p) + os.sep for p in (TASK, *LAYERS, RUNTIME, *STDLIB))

# Replies go to a private copy of stdout; fd 1 (print, logging) now goes to stderr.
channel = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def reply(message: dict) -> None:
    channel.write(json.dumps(message, default=str) + "\n")
    channel.flush()


class Context:
    def __init__(self) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "build-test"
        self._deadline = time.monotonic() + float(os.environ["RUNNER_TIMEOUT"])

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def foreign_modules() -> dict[str, str]:
    found = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and os.path.realpath(path) == os.path.realpath(__file__):
            continue  # this runner (__main__), Lambda's bootstrap in the real thing
        if path and not os.path.realpath(path).startswith(ALLOWED):
            found[name] = path
    return found


def main() -> int:
    module_name, _, attribute = HANDLER.rpartition(".")
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except BaseException:  # an import failure is what this runner exists to report
        reply({"init_error": traceback.format_exc(), "foreign": foreign_modules()})
        return 1
    reply({"init_ms": round((time.perf_counter() - started) * 1000), "sys_path": sys.path})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            response = handler(request["event"], Context())
        except BaseException:
            reply({"error": traceback.format_exc()})
            continue
        reply({"response": response})
    reply({"foreign": foreign_modules()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
