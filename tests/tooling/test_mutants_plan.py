"""make mutants' planning: stable ids, the annotation filter, the sample, the equivalents file.
No mutation campaign runs here: plan.py is plain Python over enumerated sites."""

from __future__ import annotations

import textwrap

import pytest
from mutation import plan

SOURCE = textwrap.dedent(
    """\
    from __future__ import annotations

    LIMIT = 10


    class Ledger:
        def add(self, amount: int | None, extra: int = 1) -> int | None:
            total: int | None = amount + extra
            return total + extra

        def twice(self) -> int:
            return self.add(1) + self.add(1)
    """
)


def site(
    line: int, column: int, operator: str = "core/ReplaceBinaryOperator_Add_Sub", occurrence: int = 0
) -> plan.Site:
    return plan.Site("pkg/ledger.py", operator, occurrence, (line, column), (line, column + 1), f"job-{line}-{column}")


def index() -> dict[str, plan.SourceIndex]:
    return {"pkg/ledger.py": plan.SourceIndex.of(SOURCE)}


def test_a_stable_id_names_the_function_the_operator_and_the_line_not_the_occurrence() -> None:
    (mutant,) = plan.stable_ids([site(8, 35, occurrence=3)], index())
    assert mutant.id.startswith("pkg/ledger.py:Ledger.add:ReplaceBinaryOperator_Add_Sub:")
    assert mutant.function == "Ledger.add"
    # Code added above the line moves the occurrence and the line number, not the id.
    moved = plan.SourceIndex.of("import os\n\n" + SOURCE)
    (again,) = plan.stable_ids(
        [plan.Site("pkg/ledger.py", "core/ReplaceBinaryOperator_Add_Sub", 7, (10, 35), (10, 36))],
        {"pkg/ledger.py": moved},
    )
    assert again.id == mutant.id


def test_a_stable_id_changes_when_the_mutated_line_changes() -> None:
    (before,) = plan.stable_ids([site(9, 21)], index())
    changed = SOURCE.replace("return total + extra", "return total + extra + 0")
    (after,) = plan.stable_ids([site(9, 21)], {"pkg/ledger.py": plan.SourceIndex.of(changed)})
    assert before.id != after.id


def test_equal_sites_are_numbered_in_file_order() -> None:
    # The same line text twice in one function, and an operator applied twice at one site.
    first, second = plan.stable_ids([site(12, 27, occurrence=1), site(12, 27, occurrence=0)], index())
    assert (first.site.occurrence, first.id.count("#")) == (0, 0)
    assert second.id == first.id + "#1"
    ids = [m.id for m in plan.stable_ids([site(12, 27), site(12, 27, occurrence=1), site(9, 21)], index())]
    assert len(set(ids)) == 3


def test_module_level_sites_are_named_module() -> None:
    (mutant,) = plan.stable_ids([site(3, 8, "core/NumberReplacer")], index())
    assert ":<module>:NumberReplacer:" in mutant.id


def test_mutants_inside_annotations_are_left_out_and_counted() -> None:
    sites = [
        site(7, 30, "core/ReplaceBinaryOperator_BitOr_BitAnd"),  # amount: int | None
        site(7, 61, "core/ReplaceBinaryOperator_BitOr_BitAnd"),  # -> int | None
        site(8, 19, "core/ReplaceBinaryOperator_BitOr_BitAnd"),  # total: int | None = ...
        site(8, 35),  # amount + extra: an expression
        site(7, 51, "core/NumberReplacer"),  # the default 1: an expression
    ]
    kept, dropped = plan.filter_sites(plan.stable_ids(sites, index()), index())
    assert dropped == {"annotation": 3}
    assert sorted(m.site.start for m in kept) == [(7, 51), (8, 35)]


def test_stars_of_unpacking_and_keyword_only_parameters_are_not_operators() -> None:
    source = "def f(a, *, b):\n    return g(*a, **b) * 2 ** b\n"
    line = source.splitlines()[1]
    sources = {"pkg/ledger.py": plan.SourceIndex.of(source)}
    stars = {
        "marker": site(1, source.index("*"), "core/ReplaceBinaryOperator_Mul_Add"),
        "unpack": site(2, line.index("*a"), "core/ReplaceBinaryOperator_Mul_Add"),
        "unpack2": site(2, line.index("**b"), "core/ReplaceBinaryOperator_Pow_Add"),
        "times": site(2, line.index(") *") + 2, "core/ReplaceBinaryOperator_Mul_Add"),
        "power": site(2, line.index("2 **") + 2, "core/ReplaceBinaryOperator_Pow_Add"),
    }
    kept, dropped = plan.filter_sites(plan.stable_ids(list(stars.values()), sources), sources)
    assert dropped == {"not an operator": 3}
    assert sorted(m.site.start for m in kept) == sorted([stars["times"].start, stars["power"].start])


# ------------------------------------------------------------------ the sample


def population(files: dict[str, int]) -> list[plan.Mutant]:
    return [
        plan.Mutant(plan.Site(f, "core/AddNot", n, (n + 1, 0), (n + 1, 1)), f"{f}:f:AddNot:{n:08x}", "f")
        for f, count in files.items()
        for n in range(count)
    ]


def test_the_sample_is_the_same_every_time_and_independent_of_input_order() -> None:
    mutants = population({"a.py": 300, "b.py": 40, "c.py": 5})
    first = plan.draw(mutants, 30)
    again = plan.draw(list(reversed(mutants)), 30)
    assert [m.id for m in first] == [m.id for m in again]
    assert len(first) == 30
    assert plan.draw(mutants, 30, seed="another seed") != first


def test_every_file_is_represented_and_the_rest_is_proportional() -> None:
    counts = plan.allocate({"big.py": 900, "mid.py": 90, "tiny.py": 2, "one.py": 1}, 40)
    assert sum(counts.values()) == 40
    assert min(counts.values()) >= 1
    assert counts["big.py"] > 30 > counts["mid.py"] >= 3
    assert plan.allocate({"a.py": 3, "b.py": 2}, 100) == {"a.py": 3, "b.py": 2}  # a sample bigger than all


def test_a_mutant_stays_in_the_sample_when_unrelated_mutants_come_and_go() -> None:
    mutants = population({"a.py": 200})
    drawn = {m.id for m in plan.draw(mutants, 20)}
    others = [m for m in mutants if m.id in drawn or int(m.id.rsplit(":", 1)[1], 16) % 2]
    assert drawn == {m.id for m in plan.draw(others, 20)}  # the ranks are per id


def test_the_run_order_takes_every_files_best_ranked_mutant_first() -> None:
    sample = plan.draw(population({"a.py": 50, "b.py": 20, "c.py": 2}), 12)
    ordered = plan.interleave(sample)
    assert sorted(m.id for m in ordered) == sorted(m.id for m in sample)
    assert [m.file for m in ordered[:3]] == ["a.py", "b.py", "c.py"]  # a cut after 3 still has every file
    assert [m.file for m in ordered[3:5]] == ["a.py", "b.py"]  # c.py has one mutant in the sample
    assert ordered == plan.interleave(list(reversed(sample)))
    firsts = {m.file: m for m in reversed(ordered)}  # each file's first in the run order
    for f, first in firsts.items():
        assert first.id == min((m for m in sample if m.file == f), key=lambda m: plan.rank(m.id)).id


def test_the_whole_population_when_no_size_is_given() -> None:
    mutants = population({"b.py": 3, "a.py": 2})
    assert [m.file for m in plan.draw(mutants, None)] == ["a.py", "a.py", "b.py", "b.py", "b.py"]


# ------------------------------------------------------------------ equivalents

GOOD = '''
[[equivalent]]
id = "layers/x.py:f:AddNot:0123abcd"
argument = """
The flag is re-read two lines below; both paths write the same item.
"""

[[equivalent]]
id = "layers/x.py:g:NumberReplacer:89abcdef#1"
argument = "Page sizes 0 and 1 are refused by the model before this line."
'''


def test_the_equivalents_file_maps_ids_to_arguments() -> None:
    found = plan.parse_equivalents(GOOD)
    assert set(found) == {"layers/x.py:f:AddNot:0123abcd", "layers/x.py:g:NumberReplacer:89abcdef#1"}
    assert found["layers/x.py:f:AddNot:0123abcd"].argument.startswith("The flag is re-read")
    assert plan.parse_equivalents("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[equivalent]]\nid = "a:b:c:d"\nargument = "  "\n', "needs a written argument"),
        ('[[equivalent]]\nid = "a:b:c:d"\n', "exactly the keys"),
        ('[[equivalent]]\nid = "a"\nargument = "x"\n[[equivalent]]\nid = "a"\nargument = "y"\n', "listed twice"),
        ('[[equivalents]]\nid = "a"\nargument = "x"\n', "unknown top-level keys"),
        ("[[equivalent]\n", "not valid TOML"),
    ],
)
def test_a_malformed_equivalents_file_is_refused(text: str, message: str) -> None:
    with pytest.raises(plan.EquivalentsError, match=message):
        plan.parse_equivalents(text)


def test_an_equivalent_that_matches_no_mutant_is_reported() -> None:
    equivalents = plan.parse_equivalents(GOOD)
    mutants = [plan.Mutant(site(1, 0), "layers/x.py:f:AddNot:0123abcd", "f")]
    assert plan.unmatched_equivalents(equivalents, mutants) == ["layers/x.py:g:NumberReplacer:89abcdef#1"]


def test_the_checked_in_equivalents_file_parses() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "mutation" / "equivalent.toml"
    for entry in plan.load_equivalents(path).values():
        assert entry.id.count(":") >= 3  # <file>:<function>:<operator>:<hash>
