"""Build step: make a package's re-exporting `__init__.py` import its names on first use (PEP 562).

Powertools' `aws_lambda_powertools.event_handler` and `...utilities.data_classes` packages import
every resolver and every event class they re-export (AppSync with asyncio, Bedrock, Kinesis, S3,
...), so a function that only uses the HTTP resolver pays for all of them at cold start. This
rewrites such an `__init__.py` into a table of `name -> (module, attribute)` and a module
`__getattr__` that imports on first access: `from package import Name` still works, as do
submodules as attributes.

Only a file made of nothing but a docstring, `from ... import ...` statements and `__all__` is
rewritten; anything else (a side effect, a star import) fails the build, so a dependency upgrade
that changes such a file is noticed instead of silently changed.

    python lazy_reexports.py SITE_DIR PACKAGE [PACKAGE ...]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MARKER = "# made lazy at build time by layers/lazy_reexports.py"

TEMPLATE = """{docstring}
{marker}
import importlib as _importlib

_EXPORTS = {exports!r}
__all__ = {all_names!r}


def __getattr__(name):
    target = _EXPORTS.get(name)
    if target is None:
        try:
            return _importlib.import_module(f"{{__name__}}.{{name}}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{{__name__}}.{{name}}":
                raise
            raise AttributeError(f"module {{__name__!r}} has no attribute {{name!r}}") from None
    module, attribute = target
    value = getattr(_importlib.import_module(module), attribute) if attribute else _importlib.import_module(module)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
"""


class NotReexportOnly(ValueError):
    pass


def lazy_source(source: str, package: str) -> str:
    """The lazy equivalent of a re-export-only `__init__.py` of `package`."""
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=False)
    exports: dict[str, tuple[str, str]] = {}
    all_names: list[str] | None = None
    for node in tree.body[1:] if docstring is not None else tree.body:
        if isinstance(node, ast.ImportFrom):
            exports.update(_reexports(node, package))
        elif _is_all(node):
            all_names = list(ast.literal_eval(node.value))  # type: ignore[attr-defined]
        else:
            raise NotReexportOnly(f"{package}: line {node.lineno} is not a re-export ({type(node).__name__})")
    missing = [name for name in all_names or [] if name not in exports]
    if missing:
        raise NotReexportOnly(f"{package}: __all__ names {missing} that it does not import")
    return TEMPLATE.format(
        docstring=repr(docstring) if docstring is not None else '""',
        marker=MARKER,
        exports=exports,
        all_names=all_names if all_names is not None else sorted(exports),
    )


def _reexports(node: ast.ImportFrom, package: str) -> dict[str, tuple[str, str]]:
    """name -> (module, attribute) of one `from ... import ...` ("" attribute: the module itself)."""
    base = _absolute(node, package)
    found: dict[str, tuple[str, str]] = {}
    for alias in node.names:
        if alias.name == "*":
            raise NotReexportOnly(f"{package}: star import from {base}")
        bound = alias.asname or alias.name
        found[bound] = (f"{base}.{alias.name}", "") if node.module is None else (base, alias.name)
    return found


def _is_all(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "__all__"
    )


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    if not base:
        raise NotReexportOnly(f"{package}: relative import beyond the top package")
    return ".".join([*base, node.module] if node.module else base)


def make_lazy(site: Path, package: str) -> bool:
    """Rewrite `package`'s __init__.py under `site`; False if it already was."""
    init = site.joinpath(*package.split("."), "__init__.py")
    source = init.read_text(encoding="utf-8")
    if MARKER in source:
        return False
    init.write_text(lazy_source(source, package), encoding="utf-8")
    return True


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    site = Path(argv[0])
    try:
        for package in argv[1:]:
            make_lazy(site, package)
    except (NotReexportOnly, FileNotFoundError) as exc:
        print(f"lazy_reexports: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
