"""End-to-end tests of ``confidence`` through ``pytester`` on SQLite: a low-traffic stage is
inconclusive and says how much more traffic would decide, the same stage with more traffic is
decided, ``on_inconclusive`` turns the verdict into what pytest reports, a canary is judged
against its control by significance (error ratios by their counts, latencies by the ranks of
their raw samples), and the family adjustment changes a borderline verdict.

The intervals quoted are checked against the brute-force Clopper-Pearson of
``test_confidence.py``, computed here from the rows each test inserted.
"""

from __future__ import annotations

import json

import pytest

# Imported here, before any in-process run: pytester forgets the modules a run imported, and
# SciPy's compiled modules cannot be loaded twice in one process.
import scipy.stats  # noqa: F401
from test_confidence import brute_clopper_pearson
from test_plugin_gates_e2e import (
    AT_UNIX,
    ERROR_RATE,
    HOUR,
    OWN_FILTERS,
    Row,
    junit_cases,
    kind,
    lit,
    make_db,
    props,
    run,
    traffic,
    write_spec,
)

pytest_plugins = ["pytester"]

NOW = AT_UNIX - HOUR  # inside the beta stage's 6h window


def confident(extra: str = "", **keys: str) -> str:
    lines = "".join(f"  {k}: {v}\n" for k, v in keys.items())
    return ERROR_RATE + "  max: 5%\n  confidence: 95%\n" + lines + extra


def ci_text(k: int, n: int) -> str:
    low, high = brute_clopper_pearson(k, n, 0.95)
    return f"{k / n * 100:.2f}% (95% CI {low * 100:.2f}% to {high * 100:.2f}%)"


def test_low_traffic_is_inconclusive_and_says_how_much_more(pytester: pytest.Pytester) -> None:
    make_db(pytester, traffic(NOW, 100, 3))
    write_spec(pytester, confident())
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        lit(f"error_rate[beta] INCONCLUSIVE: {ci_text(3, 100)} cannot be told from max 5.00%; "
            "about ") + "* more requests would decide",
        "  on_inconclusive: fail",
        "  confidence: 95% (clopper-pearson)",
        "*SLO gate beta: HOLD (1 objective: 1 inconclusive)",
    ])
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "failure"
    got = props(case)
    assert got["slo.verdict"] == "inconclusive"
    assert got["slo.confidence"] == "95% (clopper-pearson)"
    (test,) = json.loads(got["slo.tests"])
    assert test["counts"] == [3, 100] and test["verdict"] == "inconclusive"
    assert test["interval"] == pytest.approx(list(brute_clopper_pearson(3, 100, 0.95)))
    assert "more requests would decide" in test["more"]


def test_the_same_stage_with_more_traffic_is_decided(pytester: pytest.Pytester) -> None:
    make_db(pytester, traffic(NOW, 1000, 30))
    write_spec(pytester, confident())
    result = run(pytester, "--slo-report-json=evidence.json", "--slo-report-md=summary.md")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*SLO gate beta: PROMOTE (1 objective: 1 pass)"])
    evidence = json.loads((pytester.path / "evidence.json").read_text(encoding="utf-8"))
    (objective,) = evidence["objectives"]
    assert objective["verdict"] == "pass"
    (test,) = objective["confidence"]["tests"]
    assert test["test"] == "binomial" and test["method"] == "clopper-pearson"
    assert test["statistic"] == 30 and test["p_pass"] < 0.05
    markdown = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert "**Statistics**" in markdown and "binomial, clopper-pearson" in markdown


def test_a_breach_the_counts_show_fails(pytester: pytest.Pytester) -> None:
    make_db(pytester, traffic(NOW, 1000, 90))
    write_spec(pytester, confident())
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines([lit(f"error_rate[beta] FAILED: {ci_text(90, 1000)} breaks "
                                     "max 5.00% (p = ") + "*"])


def test_without_confidence_the_point_value_decides(pytester: pytest.Pytester) -> None:
    make_db(pytester, traffic(NOW, 100, 3))
    write_spec(pytester, ERROR_RATE + "  max: 5%\n")
    assert run(pytester).ret == 0


@OWN_FILTERS
@pytest.mark.parametrize(("policy", "outcome", "ret", "label"), [
    ("warn", "passed", 0, "INCONCLUSIVE (warn)"), ("skip", "skipped", 0, "INCONCLUSIVE (skip)"),
    ("pass", "passed", 0, "INCONCLUSIVE (pass)"), ("fail", "failure", 1, "INCONCLUSIVE")])
def test_on_inconclusive_decides_what_pytest_reports(pytester: pytest.Pytester, policy: str,
                                                     outcome: str, ret: int, label: str) -> None:
    make_db(pytester, traffic(NOW, 100, 3))
    write_spec(pytester, confident(on_inconclusive=policy))
    result = run(pytester)
    assert result.ret == ret
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == ("skipped" if outcome == "skipped" else
                          "failure" if outcome == "failure" else "passed")
    result.stdout.fnmatch_lines([f"error_rate*beta*{lit(label)}"])
    if policy == "warn":
        result.stdout.fnmatch_lines(["*SloWarning: error_rate[[]beta[]] INCONCLUSIVE*"])


def test_confidence_from_the_stage_applies_to_ratio_objectives(pytester: pytest.Pytester
                                                               ) -> None:
    make_db(pytester, traffic(NOW, 100, 3))
    stages = "stages:\n  beta:\n    variables: {window: 6h}\n    confidence: 90%\n"
    write_spec(pytester, ERROR_RATE + "  max: 5%\n", stages=stages)
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*error_rate[[]beta[]] INCONCLUSIVE: 3.00% (90% CI *"])


# -- canary against control -----------------------------------------------------------------------

COHORT_ERRORS = ("SELECT count(*) FROM req WHERE outcome = 'error' AND cohort = '${cohort}' "
                 "AND ts >= :window_start AND ts < :window_end")
COHORT_REQUESTS = ("SELECT count(*) FROM req WHERE cohort = '${cohort}' AND ts >= :window_start "
                   "AND ts < :window_end")
AGAINST_CONTROL = f"""\
- name: error_rate
  confidence: 95%
  ratio:
    numerator: {COHORT_ERRORS}
    denominator: {COHORT_REQUESTS}
  baseline:
    variables: {{cohort: control}}
    max_increase: 20%
"""


def cohorts(canary: tuple[int, int], control: tuple[int, int]) -> list[Row]:
    return [*traffic(NOW, canary[0], canary[1], cohort="canary"),
            *traffic(NOW, control[0], control[1], cohort="control")]


def fails_with(pytester: pytest.Pytester, rows: list[Row], objective: str,
               lines: list[str]) -> dict[str, object]:
    """Run ``objective`` over ``rows``: it fails with ``lines``; its one test, as JUnit has it."""
    make_db(pytester, rows)
    write_spec(pytester, objective)
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(lines)
    (case,) = junit_cases(pytester).values()
    (test,) = json.loads(props(case)["slo.tests"])
    assert isinstance(test, dict)
    return test


def test_a_real_regression_fails_by_significance(pytester: pytest.Pytester) -> None:
    test = fails_with(pytester, cohorts((5000, 200), (5000, 100)), AGAINST_CONTROL, [
        "error_rate[[]beta[]] FAILED: rate ratio 2.00x (canary against baseline, 95% CI *) "
        "breaks max_increase 20% (p = *",
        "*canary 200 of 5,000, baseline 100 of 5,000*"])
    assert test["test"] == "rate ratio" and test["counts"] == [200, 5000, 100, 5000]


def test_a_noisy_but_equal_canary_passes(pytester: pytest.Pytester) -> None:
    make_db(pytester, cohorts((20_000, 400), (20_000, 400)))
    write_spec(pytester, AGAINST_CONTROL)
    assert run(pytester).ret == 0


def test_a_difference_chance_explains_is_inconclusive_not_a_fail(pytester: pytest.Pytester
                                                                 ) -> None:
    # 4.5 % against 3.2 %: up 41 %, a point-value fail of max_increase 20 %.
    make_db(pytester, cohorts((1000, 45), (1000, 32)))
    write_spec(pytester, AGAINST_CONTROL)
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["error_rate[[]beta[]] INCONCLUSIVE: rate ratio 1.41x *cannot "
                                 "be told from max_increase 20%; about * more canary requests*"])


# -- the family ----------------------------------------------------------------------------------

REGION_ERRORS = ("SELECT count(*) FROM req WHERE outcome = 'error' AND region = '${region}' "
                 "AND ts >= :window_start AND ts < :window_end")
REGION_REQUESTS = ("SELECT count(*) FROM req WHERE region = '${region}' AND ts >= :window_start "
                   "AND ts < :window_end")
BY_REGION = f"""\
- name: error_rate
  confidence: 95%
  max: 5%
  matrix:
    region: [eu, us, ap]
  ratio:
    numerator: {REGION_ERRORS}
    denominator: {REGION_REQUESTS}
"""


def test_the_family_adjustment_changes_a_borderline_verdict(pytester: pytest.Pytester) -> None:
    # eu: 70 of 1000, a breach at p of about 0.008 alone; us and ap hold at 1 %.
    make_db(pytester, [*traffic(NOW, 1000, 70, region="eu"), *traffic(NOW, 1000, 10, region="us"),
                       *traffic(NOW, 1000, 10, region="ap")])
    write_spec(pytester, BY_REGION)
    alone = run(pytester, "--slo-confidence-adjustment=none")
    alone.stdout.fnmatch_lines(["*error_rate[[]beta-region=eu[]] FAILED: 7.00%*",
                                "*confidence: no adjustment over 3 tests*"])
    holm = run(pytester)
    assert holm.ret == 1
    holm.stdout.fnmatch_lines([
        "*error_rate[[]beta-region=eu[]] FAILED: 7.00%*adjusted*",
        "*SLO gate beta: HOLD (3 objectives: 1 fail, 2 pass; confidence: Holm adjustment "
        "over 3 tests)"])


def test_holm_makes_a_borderline_fail_inconclusive(pytester: pytest.Pytester) -> None:
    # 65 of 1000: p for a breach about 0.03 alone, above 0.05 once tripled by Holm.
    make_db(pytester, [*traffic(NOW, 1000, 65, region="eu"), *traffic(NOW, 1000, 10, region="us"),
                       *traffic(NOW, 1000, 10, region="ap")])
    write_spec(pytester, BY_REGION)
    alone = run(pytester, "--slo-confidence-adjustment=none")
    alone.stdout.fnmatch_lines(["*error_rate[[]beta-region=eu[]] FAILED: 6.50%*"])
    holm = run(pytester)
    holm.stdout.fnmatch_lines([
        "*error_rate[[]beta-region=eu[]] INCONCLUSIVE: 6.50%*after the Holm adjustment)"])
    case = junit_cases(pytester)["error_rate[beta-region=eu]"]
    assert props(case)["slo.adjustment"] == "Holm adjustment over 3 tests"
    bh = run(pytester, "--slo-confidence-adjustment=bh")
    bh.stdout.fnmatch_lines(["*error_rate[[]beta-region=eu[]] *: 6.50%*"])


def test_a_bad_adjustment_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_db(pytester, traffic(NOW, 100, 3))
    write_spec(pytester, confident())
    result = run(pytester, "--slo-confidence-adjustment=bonferroni")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*slo_confidence_adjustment must be one of holm, bh, none, "
                                 "got 'bonferroni'*"])


def test_confidence_on_a_plain_latency_query_is_a_spec_error(pytester: pytest.Pytester
                                                             ) -> None:
    make_db(pytester, traffic(NOW, 100, 3))
    write_spec(pytester, "- name: latency\n  query: SELECT max(latency) FROM req\n  max: 1s\n"
                         "  confidence: 95%\n")
    result = run(pytester)
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*objectives.latency.confidence*confidence judges a ratio by "
                                 "its counts, a histogram_quantile by its bucket counts, or a "
                                 "quantile's raw samples against a baseline*"])


def test_under_xdist_every_worker_judges_the_same_family(pytester: pytest.Pytester) -> None:
    make_db(pytester, [*traffic(NOW, 1000, 65, region="eu"), *traffic(NOW, 1000, 10, region="us"),
                       *traffic(NOW, 1000, 10, region="ap")])
    write_spec(pytester, BY_REGION)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                           "-n", "2", "--slo-stage=beta", f"--slo-at={AT_UNIX}",
                                           "--junitxml=slo.xml")
    assert result.ret == 1
    cases = junit_cases(pytester)
    assert props(cases["error_rate[beta-region=eu]"])["slo.verdict"] == "inconclusive"
    for name in ("error_rate[beta-region=us]", "error_rate[beta-region=ap]"):
        assert props(cases[name])["slo.adjustment"] == "Holm adjustment over 3 tests"
    result.stdout.fnmatch_lines(["*SLO gate beta: HOLD (3 objectives: 1 inconclusive, 2 pass; "
                                 "confidence: Holm adjustment over 3 tests)"])


# -- latency against control: ranks of raw samples ---------------------------------------------

LATENCIES = ("SELECT latency FROM req WHERE cohort = '${cohort}' AND ts >= :window_start "
             "AND ts < :window_end")
LATENCY_AGAINST_CONTROL = f"""\
- name: latency_p95
  confidence: 95%
  quantile:
    q: 0.95
    values: {LATENCIES}
  baseline:
    variables: {{cohort: control}}
    max_increase: 10%
"""


def timed(cohort: str, latencies: list[float]) -> list[Row]:
    return traffic(NOW, len(latencies), 0, cohort=cohort, latencies=latencies)


def spread(n: int, scale: float = 1.0) -> list[float]:
    """``n`` latencies from 0.1 s to 1.1 s, evenly: two cohorts with the same spread."""
    return [round((0.1 + i / n) * scale, 6) for i in range(n)]


def test_a_latency_regression_fails_by_rank(pytester: pytest.Pytester) -> None:
    rows = [*timed("canary", spread(400, 1.5)), *timed("control", spread(400))]
    test = fails_with(pytester, rows, LATENCY_AGAINST_CONTROL, [
        "latency_p95[[]beta[]] FAILED: canary / baseline 1.50x (Hodges-Lehmann, 95% CI *) "
        "breaks max_increase 10% (p = *",
        "*400 canary and 400 baseline samples, U = *"])
    assert test["test"] == "mann-whitney" and test["counts"] == [400, 400]


def test_an_equal_latency_passes(pytester: pytest.Pytester) -> None:
    make_db(pytester, [*timed("canary", spread(2000)), *timed("control", spread(2000))])
    write_spec(pytester, LATENCY_AGAINST_CONTROL)
    assert run(pytester).ret == 0


def test_few_latency_samples_are_inconclusive(pytester: pytest.Pytester) -> None:
    make_db(pytester, [*timed("canary", spread(10)), *timed("control", spread(10))])
    write_spec(pytester, LATENCY_AGAINST_CONTROL)
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["latency_p95[[]beta[]] INCONCLUSIVE: canary / baseline 1.00x "
                                 "*cannot be told from max_increase 10%; more samples on both "
                                 "sides would decide"])
