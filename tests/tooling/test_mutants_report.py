"""make mutants' reading of the killers' output, its score and its report (no campaign runs here)."""

from __future__ import annotations

import json
from pathlib import Path

from mutation import killers, report

SCENARIOS_FAIL = """\
give-back-strands-paid-session (defect 1): holds ; trace d1d05d8973ce584d
early-event-dropped (defect 2): FAILS ; trace 25d38cc5b33bb0c2
    stock_conserved: product 3 variant 1: stock 9 + held 0 != 10
gateway-transaction-twice (defect 3): holds ; trace 5ad9fb5d3d157177

1 of 3 scenarios break an invariant
"""

SCENARIOS_HARNESS = """\
give-back-strands-paid-session (defect 1): FAILS ; trace d1d05d8973ce584d
    HARNESS ERROR NameError: name 'Decimall' is not defined
"""


def test_a_failing_scenario_names_itself_and_its_invariant() -> None:
    verdict = killers.scenario_verdict(killers.Run(1, SCENARIOS_FAIL, 7.5))
    assert (verdict.killed, verdict.how, verdict.where) == (True, "scenario", "early-event-dropped")
    assert verdict.detail.startswith("stock_conserved: product 3")
    assert verdict.ran == "3 scenarios"


def test_scenarios_that_hold_do_not_kill_and_a_harness_error_is_told_apart() -> None:
    assert not killers.scenario_verdict(killers.Run(0, "a (defect 1): holds ; trace x\n", 6.0)).killed
    harness = killers.scenario_verdict(killers.Run(1, SCENARIOS_HARNESS, 1.0))
    assert (harness.killed, harness.how) == (True, "harness error")


def test_a_timeout_or_a_crash_kills() -> None:
    assert killers.scenario_verdict(killers.Run(None, "", 60.0)).how == "timeout"
    crash = killers.scenario_verdict(killers.Run(1, "Traceback ...\nImportError: no module\n", 2.0))
    assert (crash.killed, crash.how) == (True, "crash")
    assert "ImportError" in crash.detail


def test_the_first_failing_seed_is_read_from_the_simulations_report() -> None:
    rows = {
        "seeds": [
            {
                "seed": 3,
                "family": "kills",
                "violations": [{"invariant": "counts_match", "defect": "?", "detail": "a later seed"}],
                "error": None,
            },
            {"seed": 0, "family": "calm", "violations": [], "error": None},
            {
                "seed": 2,
                "family": "stripe",
                "violations": [{"invariant": "paid_session_settled", "defect": "?", "detail": "cs_1 paid"}],
                "error": None,
            },
            {"seed": 1, "family": "dynamodb", "violations": [], "error": None},
        ]
    }
    verdict = killers.seeds_verdict(killers.Run(1, "", 20.0), rows, 40)
    assert (verdict.how, verdict.where, verdict.detail) == (
        "seed",
        "seed 2 (stripe)",
        "paid_session_settled: cs_1 paid",
    )
    assert verdict.ran == "4 of 40 seeds"
    held = killers.seeds_verdict(killers.Run(0, "", 30.0), {"seeds": []}, 40)
    assert not held.killed
    errored = {"seeds": [{"seed": 5, "family": "kills", "violations": [], "error": "KeyError: 'x'"}]}
    assert killers.seeds_verdict(killers.Run(1, "", 3.0), errored, 40).how == "harness error"
    assert killers.seeds_verdict(killers.Run(1, "boom", 3.0), None, 40).how == "crash"


PYTEST_FAIL = """\
..F
=========================== short test summary info ============================
FAILED tests/unit/test_money.py::test_three_decimals[kwd] - AssertionError: assert 1230 == 123
!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!
1 failed, 2 passed in 0.52s
"""


def test_the_test_that_killed_is_read_from_pytests_summary() -> None:
    verdict = killers.tests_verdict(killers.Run(1, PYTEST_FAIL, 0.6), 3)
    assert (verdict.killed, verdict.how) == (True, "test")
    assert verdict.where == "tests/unit/test_money.py::test_three_decimals[kwd]"
    assert verdict.detail == "AssertionError: assert 1230 == 123"
    assert not killers.tests_verdict(killers.Run(0, "3 passed", 0.5), 3).killed
    assert killers.tests_verdict(killers.Run(None, "", 99.0), 3).how == "timeout"


def test_a_failing_test_whose_parameters_have_spaces_is_named_in_full() -> None:
    output = (
        "=========================== short test summary info ============================\n"
        "FAILED tests/integration/test_checkout_stripe.py::test_timeout[session made, answer lost]\n"
        "!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    )
    verdict = killers.tests_verdict(killers.Run(1, output, 2.0), 9)
    assert (verdict.how, verdict.where) == (
        "test",
        "tests/integration/test_checkout_stripe.py::test_timeout[session made, answer lost]",
    )
    with_reason = "ERROR tests/unit/test_a.py::test_b[a - b] - RuntimeError: boom\n"
    assert killers.failures(with_reason) == {"tests/unit/test_a.py::test_b[a - b]": "RuntimeError: boom"}


def test_durations_add_up_setup_call_and_teardown() -> None:
    output = (
        "0.50s call     tests/unit/test_a.py::test_x\n"
        "0.20s setup    tests/unit/test_a.py::test_x\n"
        "0.01s teardown tests/integration/test_b.py::test_y[a b]\n"
    )
    assert killers.durations(output) == {
        "tests/unit/test_a.py::test_x": 0.7,
        "tests/integration/test_b.py::test_y[a b]": 0.01,
    }


def test_tests_are_selected_by_the_mutated_lines_fastest_first(tmp_path: Path) -> None:
    data = {
        "files": {
            str(tmp_path / "layers/m.py"): {
                "contexts": {
                    "3": [""],  # module level: run while importing
                    "10": ["tests/unit/test_a.py::test_slow|run", "tests/unit/test_a.py::test_fast|run"],
                    "11": ["tests/unit/test_a.py::test_fast|setup"],
                    "20": ["tests/unit/test_b.py::test_other|run", "tests/unit/test_b.py::test_broken|run"],
                }
            }
        }
    }
    mapping = killers.CoverageMap.from_coverage_json(data, tmp_path)
    mapping.seconds = {"tests/unit/test_a.py::test_slow": 3.0, "tests/unit/test_a.py::test_fast": 0.1}
    mapping.broken = {"tests/unit/test_b.py::test_broken"}
    assert mapping.select("layers/m.py", [10, 11]) == [
        "tests/unit/test_a.py::test_fast",
        "tests/unit/test_a.py::test_slow",
    ]
    assert mapping.select("layers/m.py", [30]) == []
    # A module-level line: every test that ran the file, except one that fails without any mutant.
    assert mapping.select("layers/m.py", [3]) == [
        "tests/unit/test_b.py::test_other",
        "tests/unit/test_a.py::test_fast",
        "tests/unit/test_a.py::test_slow",
    ]
    again = killers.CoverageMap.from_json(json.loads(json.dumps(mapping.to_json())))
    assert again == mapping


# ------------------------------------------------------------------ the score and the report


def outcome(number: int, simulation: killers.Verdict | None, tests: killers.Verdict | None = None) -> report.Outcome:
    return report.Outcome(
        id=f"layers/m.py:f:AddNot:{number:08x}",
        file="layers/m.py",
        line=number,
        function="f",
        operator="AddNot",
        occurrence=number,
        diff=f"--- a/layers/m.py\n+++ b/layers/m.py\n@@ -{number} +{number} @@\n-    if x:\n+    if not x:",
        simulation=simulation.to_json() if simulation else None,
        tests=tests.to_json() if tests else None,
    )


def campaign() -> list[report.Outcome]:
    held = killers.Verdict("simulation", False, ran="15 scenarios, 40 of 40 seeds")
    return [
        outcome(1, killers.Verdict("simulation", True, "scenario", "early-event-dropped", "stock_conserved: x")),
        outcome(2, killers.Verdict("simulation", True, "seed", "seed 17 (gateway)", "counts_match: y")),
        outcome(3, killers.Verdict("simulation", True, "timeout", "scenarios")),
        outcome(4, held, killers.Verdict("tests", True, "test", "tests/unit/test_a.py::test_x", "assert 1 == 2")),
        outcome(5, held, killers.Verdict("tests", False, ran="12 tests")),
        report.Outcome("layers/m.py:g:X:00000006", "layers/m.py", 6, "g", "X", 0, "", incompetent="SyntaxError: x"),
    ]


def test_the_score_counts_simulation_alone_and_simulation_with_tests() -> None:
    score = report.score(campaign(), tests_for_all=False)
    assert (score.total, score.by_simulation, score.by_both) == (6, 4, 5)
    assert (score.incompetent, score.timeouts, score.by_tests) == (1, 1, None)
    assert [o.line for o in score.survivors] == [5]
    assert not score.met
    lines = report.score_lines(score)
    assert lines[0] == (
        "simulation alone kills 4/6 (66.7%) of mutants not argued equivalent; simulation+tests kill 5/6 (83.3%)"
    )


def test_the_bar_is_ninety_percent_by_the_simulation_and_no_survivor() -> None:
    killed = killers.Verdict("simulation", True, "scenario", "a", "b")
    held = killers.Verdict("simulation", False)
    by_tests = killers.Verdict("tests", True, "test", "t", "")
    nine_of_ten = [outcome(n, killed) for n in range(9)] + [outcome(9, held, by_tests)]
    assert report.score(nine_of_ten, tests_for_all=False).met
    eight_of_ten = [outcome(n, killed) for n in range(8)] + [outcome(n, held, by_tests) for n in (8, 9)]
    assert not report.score(eight_of_ten, tests_for_all=False).met
    one_survivor = [outcome(n, killed) for n in range(9)] + [outcome(9, held, killers.Verdict("tests", False))]
    assert not report.score(one_survivor, tests_for_all=False).met


def test_the_weighted_estimate_lets_each_mutant_stand_for_its_files_population() -> None:
    killed = killers.Verdict("simulation", True, "scenario", "a", "b")
    held = killers.Verdict("simulation", False)
    big = [outcome(n, held if n == 0 else killed) for n in range(4)]  # 3 of 4 killed, of 1,000
    small = [
        report.Outcome(f"small.py:f:AddNot:{n}", "small.py", n, "f", "AddNot", n, "", held.to_json()) for n in (1, 2)
    ]
    sim, both = report.weighted([*big, *small], {"layers/m.py": 1000, "small.py": 2})
    assert round(sim, 4) == round(750 / 1002, 4)
    assert both == sim
    assert report.score([*big, *small], tests_for_all=False).by_simulation == 3  # unweighted: 3 of 6


def test_the_report_lists_each_survivor_with_its_place_id_and_diff() -> None:
    outcomes = campaign()
    score = report.score(outcomes, tests_for_all=False)
    meta = {
        "tool": "cosmic-ray 8.7.0",
        "source": "commit abc1234",
        "population": 2500,
        "population_per_file": {"layers/m.py": 2500},
        "files": 27,
        "left_out": {"annotation": 1370, "not an operator": 242},
        "sample": 7,
        "sample_rule": "deterministic",
        "equivalent_in_sample": 1,
        "seeds": 40,
        "tests_rule": "pytest -x",
        "wall_seconds": 1800.0,
        "baseline_seconds": 400.0,
        "unmatched_equivalents": ["layers/gone.py:f:AddNot:deadbeef"],
    }
    text = report.text(meta, outcomes, score)
    assert "- layers/m.py:5 f [AddNot]" in text
    assert "  id: layers/m.py:f:AddNot:00000005" in text
    assert "    +    if not x:" in text
    assert "held: 15 scenarios, 40 of 40 seeds / 12 tests" in text
    assert "by a scenario: 1 (1 early-event-dropped)" in text
    assert "first failing seeds: [17]" in text
    assert "WARNING: equivalent.toml names layers/gone.py:f:AddNot:deadbeef" in text
    assert "NOT met" in text
    assert "simulation 66.7%, simulation+tests 83.3%" in text  # one file: the same as unweighted
    partial = report.text({**meta, "partial": True}, outcomes, score)
    assert "a partial run: the bar is judged on a whole campaign" in partial
    assert "weighted by each file" not in partial
    document = report.json_report(meta, outcomes, score)
    assert document["survivors"] == ["layers/m.py:f:AddNot:00000005"]
    assert document["score"]["killed_by_simulation"] == 4
    assert [m["status"] for m in document["mutants"]] == [
        "killed by simulation",
        "killed by simulation",
        "killed by simulation",
        "killed by tests",
        "survived",
        "incompetent",
    ]
    json.dumps(document)  # it is JSON
