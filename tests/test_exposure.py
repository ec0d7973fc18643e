"""The exposure check: the binomial test against independent references, the counts, the spec.

The references are computed here from the binomial distribution itself (``math.comb`` over
exact fractions): the two-sided exact p-value sums the probability of every outcome no more
likely than the one seen, as R's ``binom.test`` and SciPy's ``binomtest`` define it. End to
end on SQLite in test_checks_e2e.py, on the real Prometheus in test_integration_exposure.py.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends.base import QueryResult, Sample, Series
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.session import pytest_slo_backend_types
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Exposure, Spec
from pytest_rollout_slo.verdict import srm
from pytest_rollout_slo.verdict.exposure import judge_exposure

BACKEND_TYPES = {t.name: t for t in pytest_slo_backend_types()}
EXPOSURE = Exposure("events", "SELECT 1", "SELECT 2", "users")


def reference_p(k: int, n: int, share: Fraction) -> float:
    """The exact two-sided binomial p-value, by brute force (R's relative tolerance 1e-7)."""
    pmf = [math.comb(n, i) * share ** i * (1 - share) ** (n - i) for i in range(n + 1)]
    limit = pmf[k] * (1 + Fraction(1, 10 ** 7))
    return float(sum(p for p in pmf if p <= limit))


@pytest.mark.parametrize(("k", "n", "share"), [
    (0, 1, Fraction(1, 10)), (0, 10, Fraction(1, 10)), (1, 10, Fraction(1, 10)),
    (10, 10, Fraction(1, 10)), (3, 100, Fraction(1, 10)), (9, 100, Fraction(1, 10)),
    (21, 1000, Fraction(1, 10)), (120, 1000, Fraction(1, 10)), (30, 100, Fraction(1, 4)),
    (7, 20, Fraction(1, 2)), (0, 50, Fraction(1, 2)), (682, 925, Fraction(3, 4)),
])
def test_p_values_agree_with_the_binomial_distribution(k: int, n: int, share: Fraction) -> None:
    assert srm.p_value(k, n, float(share)) == pytest.approx(reference_p(k, n, share), rel=1e-9)


def test_a_published_worked_example() -> None:
    # R's binom.test(682, 925, p = 0.75) (Mendel's peas, from R's own documentation):
    # p-value = 0.3825.
    assert srm.p_value(682, 925, 0.75) == pytest.approx(0.3825, abs=5e-5)


def test_huge_counts_agree_with_the_chi_square_approximation() -> None:
    from scipy.stats import chisquare

    canary, total = 1_002_000, 10_000_000
    approx = chisquare([canary, total - canary], [total * 0.1, total * 0.9]).pvalue
    assert srm.p_value(canary, total, 0.1) == pytest.approx(approx, rel=0.05)


def reference_needed(share: Fraction, threshold: float) -> int:
    n = 1
    while not (reference_p(0, n, share) < threshold and reference_p(n, n, share) < threshold):
        n += 1
    return n


@pytest.mark.parametrize("share", [Fraction(1, 2), Fraction(1, 4), Fraction(1, 10)])
def test_units_needed_is_the_fewest_that_can_show_a_mismatch(share: Fraction) -> None:
    needed = reference_needed(share, 0.001)
    assert srm.units_needed(float(share), 0.001) == needed
    assert srm.testable(needed, float(share), 0.001)
    assert not srm.testable(needed - 1, float(share), 0.001)


def counts(value: float | None) -> QueryResult:
    return QueryResult((Sample((), value),))


def test_a_matching_share_has_no_problem_and_keeps_its_numbers() -> None:
    result = judge_exposure(EXPOSURE, 10, counts(104), counts(1000))
    assert (result.problem, result.canary, result.total, result.share) == ("", 104, 1000, 0.104)
    assert result.p_value == pytest.approx(reference_p(104, 1000, Fraction(1, 10)))
    assert result.to_dict()["threshold"] == 0.001


def test_a_mismatch_says_what_was_seen_and_what_the_flag_promises() -> None:
    result = judge_exposure(EXPOSURE, 10, counts(1012), counts(48210))
    assert result.problem == (
        "the canary carried 2.1% of 48,210 users; the flag promises 10% (sample ratio "
        "mismatch, p < 1e-300): the stage did not get its share, so its objectives cannot be "
        "judged")


def test_non_integer_counts_are_rounded_and_said_so() -> None:
    result = judge_exposure(EXPOSURE, 10, counts(104.4), counts(999.6))
    assert (result.canary, result.total, result.rounded, result.problem) == (104, 1000, True, "")


@pytest.mark.parametrize(("canary", "total", "phrase"), [
    (counts(None), counts(10), "the canary query returned no data (None)"),
    (counts(math.nan), counts(10), "the canary query returned no data (nan)"),
    (counts(1), counts(math.inf), "the all query returned inf, not a count"),
    (counts(-1), counts(10), "the canary query returned -1, not a count"),
    (QueryResult(()), counts(10), "the canary query returned 0 values, not one count (no data)"),
    (counts(1), QueryResult((Sample((), 1), Sample((), 2))), "the all query returned 2 values"),
    ((Series((), ()),), counts(1), "the canary query returned series over time"),
    (counts(20), counts(10), "the canary query counted 20 users, more than the 10 of the all"),
    (counts(0), counts(0), "0 users are too few to tell the canary's share from the flag's "
                           "10% at p < 0.001: about 73 are needed"),
])
def test_counts_that_cannot_be_tested_are_problems(canary: object, total: object,
                                                   phrase: str) -> None:
    result = judge_exposure(EXPOSURE, 10, canary, total)  # type: ignore[arg-type]
    assert result.problem.startswith(f"exposure check: {phrase}")
    assert result.problem.endswith("; the stage's objectives cannot be judged")


ODD = st.one_of(st.none(), st.floats(), st.integers(min_value=-10, max_value=10 ** 6))


@settings(max_examples=200, deadline=None)
@given(canary=ODD, total=ODD, percent=st.floats(min_value=0, max_value=100))
def test_odd_counts_never_pass(canary: float | None, total: float | None,
                               percent: float) -> None:
    result = judge_exposure(EXPOSURE, percent, counts(canary), counts(total))
    valid = all(v is not None and math.isfinite(v) and v >= 0 for v in (canary, total))
    if not valid:
        assert result.problem
    if not result.problem:
        assert result.p_value is not None and result.p_value >= EXPOSURE.threshold
        assert result.total and 0 <= (result.canary or 0) <= result.total


SPEC = """\
version: 1
service: svc
backends:
  events: {{type: sqlite, path: events.db}}
variables: {{window: 1h}}
{exposure}stages:
  internal:
    rollout: {{flag: f, users: team}}
  beta:
    rollout: {{flag: f, percent: 10}}
{stage_exposure}objectives:
- name: x
  query: SELECT 1
  max: 1
"""
BLOCK = "exposure:\n  backend: events\n  canary: SELECT 1\n  all: SELECT 2\n"


def load(tmp_path: Path, exposure: str = "", stage_exposure: str = "") -> Spec:
    path = tmp_path / "x.slo.yaml"
    path.write_text(SPEC.format(exposure=exposure, stage_exposure=stage_exposure),
                    encoding="utf-8")
    return load_spec(path, BACKEND_TYPES)


def test_a_file_exposure_applies_to_the_stages_with_a_percentage(tmp_path: Path) -> None:
    spec = load(tmp_path, BLOCK + "  threshold: 0.1%\n")
    assert spec.stages["internal"].exposure is None
    assert spec.stages["beta"].exposure == Exposure("events", "SELECT 1", "SELECT 2", "users",
                                                    0.001, 7)


def test_a_stage_exposure_needs_a_percentage(tmp_path: Path) -> None:
    text = SPEC.replace("  beta:\n", "  internal2:\n    rollout: {{flag: f, all: true}}\n"
                                     "    exposure: {{backend: events, canary: a, all: b}}\n"
                                     "  beta:\n")
    path = tmp_path / "x.slo.yaml"
    path.write_text(text.format(exposure="", stage_exposure=""), encoding="utf-8")
    with pytest.raises(SpecError, match=r"stages\.internal2\.exposure: needs rollout\.percent"):
        load_spec(path, BACKEND_TYPES)


def test_without_scipy_the_spec_names_the_extra(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scipy" else real(name, *a))
    with pytest.raises(SpecError, match=r"pip install 'pytest-rollout-slo\[stats\]'"):
        load(tmp_path, BLOCK)


@given(value=st.one_of(st.floats(), st.integers(), st.text(max_size=8), st.booleans()))
def test_a_threshold_is_a_p_value_or_a_spec_error(tmp_path_factory: pytest.TempPathFactory,
                                                  value: object) -> None:
    import json

    tmp = tmp_path_factory.mktemp("t")
    try:
        spec = load(tmp, BLOCK + f"  threshold: {json.dumps(value)}\n")
    except SpecError as exc:
        assert exc.line is not None and exc.key is not None and "exposure" in exc.key
        return
    exposure = spec.stages["beta"].exposure
    assert exposure is not None and 0 < exposure.threshold <= 0.5
