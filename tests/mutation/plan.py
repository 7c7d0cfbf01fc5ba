"""Which mutants a campaign runs: stable ids, the annotation filter, the equivalents file, the sample.

Pure functions over plain data (no cosmic-ray import): the tooling's tests run them in the dev venv.

A mutant is what cosmic-ray enumerates: (file, operator, occurrence), the occurrence counting that
operator's sites from the top of the file. The occurrence moves whenever code is added above, so
the *stable id* names a mutant by what it changes instead:

    <file>:<function>:<operator>:<hash of the mutated line's text and the column>[#n]

`<function>` is the qualified name of the innermost def/class around the site (`<module>` outside
any), `#n` tells apart mutants whose other parts are equal (an operator applied twice to the same
site, the same line twice in one function), numbered in file order. The id survives edits to
other lines; it changes when the mutated line changes, and then an argument written for the old
line must be read again (the tool warns about equivalents that match no mutant).
"""

from __future__ import annotations

import ast
import hashlib
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The money code of issue 18: the layer's logic, repositories, gateways and money.py, and every
# function's handler module.
MONEY_CODE = (
    "layers/payments/halum_payments/logic",
    "layers/payments/halum_payments/repositories",
    "layers/payments/halum_payments/gateways",
    "layers/payments/halum_payments/money.py",
    "functions/*/app.py",
)
SAMPLE_SEED = "halum-mutants-1"


@dataclass(frozen=True)
class Site:
    """One mutation as enumerated: where, which operator, which occurrence of it in the file."""

    path: str  # relative to the repository root, with "/"
    operator: str  # cosmic-ray's name, e.g. "core/ReplaceComparisonOperator_Eq_NotEq"
    occurrence: int
    start: tuple[int, int]  # (line, column), line 1-based, as cosmic-ray (parso) reports it
    end: tuple[int, int]
    job_id: str = ""


@dataclass(frozen=True)
class Mutant:
    site: Site
    id: str
    function: str

    @property
    def file(self) -> str:
        return self.site.path

    @property
    def line(self) -> int:
        return self.site.start[0]

    @property
    def lines(self) -> tuple[int, int]:
        return self.site.start[0], max(self.site.end[0], self.site.start[0])


@dataclass
class SourceIndex:
    """What the stdlib's ast says about one file: annotation spans and the enclosing definitions."""

    lines: list[str]
    annotations: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    operator_gaps: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    definitions: list[tuple[int, int, str]] = field(default_factory=list)  # (first, last line, qualname)

    @classmethod
    def of(cls, source: str) -> SourceIndex:
        index = cls(source.splitlines())
        index._walk(ast.parse(source), "")
        return index

    def _walk(self, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                self.definitions.append((first, child.end_lineno or child.lineno, name))
                if not isinstance(child, ast.ClassDef):
                    self._annotations_of(child)
                self._walk(child, f"{name}.")
            else:
                if isinstance(child, ast.AnnAssign):
                    self._span(child.annotation)
                elif isinstance(child, ast.BinOp):
                    self._gap(child.left, child.right)
                elif isinstance(child, ast.AugAssign):
                    self._gap(child.target, child.value)
                self._walk(child, prefix)

    def _gap(self, before: ast.AST, after: ast.AST) -> None:
        """Where a binary operator's token is: between its operands."""
        end = (getattr(before, "end_lineno", None) or 0, getattr(before, "end_col_offset", None) or 0)
        self.operator_gaps.append((end, (getattr(after, "lineno", 0), getattr(after, "col_offset", 0))))

    def _annotations_of(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        arguments = function.args
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            self._span(argument.annotation)
        for star in (arguments.vararg, arguments.kwarg):
            if star is not None:
                self._span(star.annotation)
        self._span(function.returns)

    def _span(self, node: ast.expr | None) -> None:
        if node is not None:
            self.annotations.append(
                ((node.lineno, node.col_offset), (node.end_lineno or node.lineno, node.end_col_offset or 0))
            )

    def in_annotation(self, position: tuple[int, int]) -> bool:
        # ast columns are UTF-8 byte offsets, parso's are characters: equal on ASCII lines, which
        # the money code's annotations are.
        return any(start <= position < end for start, end in self.annotations)

    def is_binary_operator(self, position: tuple[int, int]) -> bool:
        return any(start <= position < end for start, end in self.operator_gaps)

    def function_at(self, line: int) -> str:
        inner = [(first, name) for first, last, name in self.definitions if first <= line <= last]
        return max(inner)[1] if inner else "<module>"

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""


def short_operator(operator: str) -> str:
    return operator.split("/", 1)[-1]


def stable_ids(sites: Sequence[Site], sources: Mapping[str, SourceIndex]) -> list[Mutant]:
    """Each site named by its stable id (module docstring), in the order given."""
    seen: Counter[str] = Counter()
    mutants = []
    for site in sorted(sites, key=lambda s: (s.path, s.start, s.end, s.operator, s.occurrence)):
        source = sources[site.path]
        line, column = site.start
        text = source.line_text(line)
        indent = len(text) - len(text.lstrip())
        digest = hashlib.sha1(f"{text.strip()}\0{column - indent}".encode()).hexdigest()[:8]
        function = source.function_at(line)
        base = f"{site.path}:{function}:{short_operator(site.operator)}:{digest}"
        number = seen[base]
        seen[base] += 1
        mutants.append(Mutant(site, base if number == 0 else f"{base}#{number}", function))
    return mutants


def not_mutants(mutant: Mutant, source: SourceIndex) -> str:
    """Why an enumerated site is no mutant of the money logic ("" when it is one).

    - "annotation": cosmic-ray's operators do not tell `str | None` in an annotation from `a | b` in
      an expression. The money code has hundreds of annotation sites, and a mutated type changes no
      behaviour (mypy judges annotations); where a library reads one (pydantic, Powertools' resolver)
      the mutant breaks at import, which says nothing about the money logic either.
    - "not an operator": ReplaceBinaryOperator takes the `*` of keyword-only parameters and the
      `*`/`**` of unpacking for multiplication and power; the results are syntax errors (or another
      unpacking), not mutants of an expression. A binary operator's token lies between its operands
      in the stdlib's ast; any other site of that operator is this case."""
    if source.in_annotation(mutant.site.start):
        return "annotation"
    if mutant.site.operator.startswith("core/ReplaceBinaryOperator_") and not source.is_binary_operator(
        mutant.site.start
    ):
        return "not an operator"
    return ""


def filter_sites(mutants: Iterable[Mutant], sources: Mapping[str, SourceIndex]) -> tuple[list[Mutant], Counter[str]]:
    """The mutants worth running, and how many were left out for each reason of `not_mutants`."""
    kept: list[Mutant] = []
    dropped: Counter[str] = Counter()
    for mutant in mutants:
        reason = not_mutants(mutant, sources[mutant.file])
        if reason:
            dropped[reason] += 1
        else:
            kept.append(mutant)
    return kept, dropped


# ------------------------------------------------------------------ equivalents


class EquivalentsError(ValueError):
    pass


@dataclass(frozen=True)
class Equivalent:
    id: str
    argument: str


def parse_equivalents(text: str) -> dict[str, Equivalent]:
    """tests/mutation/equivalent.toml: a list of [[equivalent]] tables, each with the mutant's
    stable `id` and the `argument` why no test can tell it from the code (non-empty)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EquivalentsError(f"not valid TOML: {exc}") from None
    unknown = set(data) - {"equivalent"}
    if unknown:
        raise EquivalentsError(f"unknown top-level keys: {sorted(unknown)} (only [[equivalent]] tables)")
    entries = data.get("equivalent", [])
    if not isinstance(entries, list):
        raise EquivalentsError("'equivalent' must be an array of tables: [[equivalent]]")
    found: dict[str, Equivalent] = {}
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) != {"id", "argument"}:
            raise EquivalentsError(f"entry {number}: needs exactly the keys 'id' and 'argument'")
        mutant_id, argument = entry["id"], entry["argument"]
        if not isinstance(mutant_id, str) or not mutant_id.strip():
            raise EquivalentsError(f"entry {number}: 'id' must be a mutant's stable id")
        if not isinstance(argument, str) or not argument.strip():
            raise EquivalentsError(f"entry {number} ({mutant_id}): an equivalent needs a written argument")
        if mutant_id in found:
            raise EquivalentsError(f"entry {number}: {mutant_id} is listed twice")
        found[mutant_id] = Equivalent(mutant_id, argument.strip())
    return found


def load_equivalents(path: Path) -> dict[str, Equivalent]:
    return parse_equivalents(path.read_text()) if path.exists() else {}


def unmatched_equivalents(equivalents: Mapping[str, Equivalent], mutants: Iterable[Mutant]) -> list[str]:
    """Entries whose id names no mutant any more (the line changed, or the code went away)."""
    ids = {m.id for m in mutants}
    return sorted(set(equivalents) - ids)


# ------------------------------------------------------------------ the sample


def rank(mutant_id: str, seed: str = SAMPLE_SEED) -> str:
    return hashlib.sha256(f"{seed}\0{mutant_id}".encode()).hexdigest()


def allocate(population: Mapping[str, int], size: int, floor: int = 1) -> dict[str, int]:
    """How many mutants to draw from each file: at least `floor` from every file (so every money
    module is represented), the rest in proportion to the file's population (largest remainders,
    ties by file name), never more than a file has."""
    files = sorted(f for f, n in population.items() if n > 0)
    total = sum(population[f] for f in files)
    if size >= total:
        return {f: population[f] for f in files}
    counts = {f: min(floor, population[f]) for f in files}
    left = size - sum(counts.values())
    if left <= 0:
        return counts
    spare = {f: population[f] - counts[f] for f in files}
    spare_total = sum(spare.values())
    shares = {f: left * spare[f] / spare_total for f in files}
    for f in files:
        counts[f] += int(shares[f])
    remaining = size - sum(counts.values())
    by_remainder = sorted(files, key=lambda f: (-(shares[f] - int(shares[f])), f))
    for f in by_remainder:
        if remaining <= 0:
            break
        if counts[f] < population[f]:
            counts[f] += 1
            remaining -= 1
    return counts


def draw(mutants: Sequence[Mutant], size: int | None, seed: str = SAMPLE_SEED, floor: int = 1) -> list[Mutant]:
    """The deterministic stratified sample: per file, the mutants with the lowest sha256(seed, id)
    (allocation by `allocate`); the whole population when size is None. Returned in file order."""
    if size is None:
        return sorted(mutants, key=order)
    by_file: dict[str, list[Mutant]] = defaultdict(list)
    for mutant in mutants:
        by_file[mutant.file].append(mutant)
    counts = allocate({f: len(ms) for f, ms in by_file.items()}, size, floor)
    chosen = [m for f, ms in by_file.items() for m in sorted(ms, key=lambda m: rank(m.id, seed))[: counts.get(f, 0)]]
    return sorted(chosen, key=order)


def interleave(mutants: Sequence[Mutant], seed: str = SAMPLE_SEED) -> list[Mutant]:
    """The order to run a sample in: every file's best-ranked mutant, then every file's second, ...
    (files by name), so a campaign cut short by its time budget still has every file represented
    as far as it got, and which mutants it ran depends only on how many."""
    by_file: dict[str, list[Mutant]] = defaultdict(list)
    for mutant in mutants:
        by_file[mutant.file].append(mutant)
    queues = [sorted(by_file[f], key=lambda m: rank(m.id, seed)) for f in sorted(by_file)]
    return [queue[n] for n in range(max(map(len, queues), default=0)) for queue in queues if n < len(queue)]


def order(mutant: Mutant) -> tuple[str, int, int, str, int]:
    return (mutant.file, mutant.site.start[0], mutant.site.start[1], mutant.site.operator, mutant.site.occurrence)
