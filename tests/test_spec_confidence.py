"""Spec keys of issue 15: ``confidence`` (objective, stage, file) and ``on_inconclusive``.

Each mistake names the file, the line and the key; each accepted form parses to the model.
Error cases mark the line the error must name with a trailing ``# <-- here`` comment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_spec_gates import (
    BACKEND_TYPES,
    MARK,
    assert_error,
    load,
    only,
    spec_text,
    with_ratio,
)

from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Confidence


def test_confidence_forms_and_where_it_applies(tmp_path: Path) -> None:
    objective = only(load(tmp_path, with_ratio("max: 5%\nconfidence: 95%\n"
                                               "on_inconclusive: warn\n")))
    assert objective.confidence == Confidence(0.95, "clopper-pearson")
    assert objective.on_inconclusive == "warn"
    objective = only(load(tmp_path, with_ratio(
        "max: 5%\nconfidence: {level: 0.9, method: wilson}\n")))
    assert objective.confidence == Confidence(0.9, "wilson")


def test_the_objective_beats_the_stage_beats_the_file(tmp_path: Path) -> None:
    text = with_ratio("max: 5%\n") + "- name: y\n  query: up\n  max: 1\n" + with_ratio(
        "max: 5%\nconfidence: 90%\n").replace("name: x", "name: z")
    path = tmp_path / "s.slo.yaml"
    path.write_text(spec_text(text, "confidence: 99%\n").replace(
        "  beta: {}\n", "  beta: {confidence: 80%}\n"), encoding="utf-8")
    spec = load_spec(path, BACKEND_TYPES)
    x, y, z = spec.objectives
    assert spec.resolve(x, "beta").confidence == Confidence(0.8)
    assert spec.resolve(x, "ga").confidence == Confidence(0.99)
    assert spec.resolve(y, "ga").confidence is None  # not a ratio: left alone
    assert spec.resolve(z, "beta").confidence == Confidence(0.9)


def test_a_stage_confidence_is_read(tmp_path: Path) -> None:
    path = tmp_path / "s.slo.yaml"
    text = spec_text(with_ratio("max: 5%\n")).replace("  beta: {}\n",
                                                      "  beta: {confidence: 95%}\n")
    path.write_text(text, encoding="utf-8")
    spec = load_spec(path, BACKEND_TYPES)
    assert spec.resolve(spec.objectives[0], "beta").confidence == Confidence(0.95)
    assert spec.resolve(spec.objectives[0], "ga").confidence is None


@pytest.mark.parametrize(("extra", "key", "phrase"), [
    (f"max: 5%\nconfidence: 100%  {MARK}\n", "objectives.x.confidence",
     "must be at least 50% and below 100%"),
    (f"max: 5%\nconfidence: 20%  {MARK}\n", "objectives.x.confidence",
     "must be at least 50% and below 100%"),
    (f"max: 5%\nconfidence: high  {MARK}\n", "objectives.x.confidence",
     "must be a fraction between 0 and 1"),
    (f"max: 5%\nconfidence:\n  level: 95%\n  method: agresti  {MARK}\n",
     "objectives.x.confidence.method", "accepted: clopper-pearson, wilson"),
    (f"max: 5%\non_inconclusive: retry  {MARK}\n", "objectives.x.on_inconclusive",
     "accepted: fail, warn, skip, pass"),
    (f"max: 5%\nconfidence: 95%  {MARK}\nsustained: {{over: 1h, step: 5m}}\n",
     "objectives.x.confidence", "does not combine with sustained"),
    (f"confidence: 95%\nbaseline:\n  variables: {{feature: other}}\n  max_increase: 0.01  {MARK}\n",
     "objectives.x.baseline.max_increase", "write the change as a percentage"),
    (f"track: true\nconfidence: 95%  {MARK}\n", "objectives.x.confidence",
     "a tracked objective"),
])
def test_confidence_mistakes(tmp_path: Path, extra: str, key: str, phrase: str) -> None:
    text = with_ratio(extra).replace("errors[${window}]", 'errors{f="${feature}"}[${window}]')
    assert_error(tmp_path, text, key, phrase)


def test_confidence_on_a_plain_query_is_for_ratio_objectives(tmp_path: Path) -> None:
    assert_error(tmp_path, f"- name: x\n  query: up\n  max: 1\n  confidence: 95%  {MARK}\n",
                 "objectives.x.confidence", "it is for ratio objectives")


def test_a_file_confidence_on_an_absolute_baseline_is_refused(tmp_path: Path) -> None:
    text = (f"- name: x  {MARK}\n  ratio:\n    numerator: sum(errors{{f=\"${{feature}}\"}})\n"
            "    denominator: sum(requests)\n  baseline:\n    variables: {feature: other}\n"
            "    max_increase: 0.01\n")
    assert_error(tmp_path, text, "objectives.x.baseline.max_increase",
                 "write the change as a percentage", top="confidence: 95%\n")


QUANTILE = """\
- name: p95
  backend: db
  quantile: {q: 0.95, values: "SELECT latency FROM req WHERE cohort = '${feature}'"}
"""


def test_a_quantile_against_a_baseline_takes_confidence_with_any_change(tmp_path: Path
                                                                        ) -> None:
    spec = load(tmp_path, QUANTILE + "  confidence: 95%\n  baseline:\n"
                "    variables: {feature: control}\n    max_increase: 50ms\n")
    assert spec.resolve(only(spec), "beta").confidence == Confidence(0.95)


def test_a_file_confidence_leaves_a_quantile_without_baseline_alone(tmp_path: Path) -> None:
    spec = load(tmp_path, QUANTILE + "  max: 1s\n", "confidence: 95%\n")
    assert spec.resolve(only(spec), "beta").confidence is None


def test_confidence_on_a_quantile_without_a_baseline_is_an_error(tmp_path: Path) -> None:
    assert_error(tmp_path, QUANTILE + f"  max: 1s\n  confidence: 95%  {MARK}\n",
                 "objectives.p95.confidence",
                 "confidence on a quantile compares its raw samples with a baseline's")


HISTOGRAM = """\
- name: p95
  histogram_quantile:
    metric: latency_seconds
    quantile: 0.95
    selector: 'cohort="${feature}"'
    by: region
"""


def test_a_histogram_gate_with_confidence_sends_its_bucket_counts(tmp_path: Path) -> None:
    spec = load(tmp_path, HISTOGRAM + "  max: 1s\n  confidence: 95%\n")
    resolved = spec.resolve(only(spec), "beta")
    assert resolved.confidence == Confidence(0.95)
    assert resolved.gate_queries == {"buckets": (
        'sum by (le, region) (increase(latency_seconds_bucket{cohort="resolver"}[1h]))')}
    # Alerts and dashboards watch the quantile itself.
    assert resolved.queries["query"].startswith("histogram_quantile(0.95, sum by (le, region)")


def test_a_file_confidence_reaches_a_histogram_and_spares_one_without(tmp_path: Path) -> None:
    spec = load(tmp_path, HISTOGRAM + "  max: 1s\n", "confidence: 95%\n")
    assert set(spec.resolve(only(spec), "beta").gate_queries) == {"buckets"}
    spec = load(tmp_path, HISTOGRAM + "  max: 1s\n")
    assert set(spec.resolve(only(spec), "beta").gate_queries) == {"query"}


def test_a_histogram_baseline_with_confidence_reads_both_sides_buckets(tmp_path: Path) -> None:
    spec = load(tmp_path, HISTOGRAM + "  confidence: 95%\n  baseline:\n"
                "    variables: {feature: control}\n    max_increase: 50ms\n")
    queries, _ = spec.resolve(only(spec), "beta").with_variables({"feature": "control"},
                                                                 gate=True)
    assert queries == {"buckets": (
        'sum by (le, region) (increase(latency_seconds_bucket{cohort="control"}[1h]))')}


RATE_RATIO = """\
- name: x
  ratio:
    numerator: sum(irate(errors[${window}]))
    denominator: sum(increase(requests_rate_total[${window}]))
  max: 5%
"""


def test_confidence_on_promql_rates_is_an_error_naming_the_part(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load(tmp_path, RATE_RATIO + "  confidence: 95%\n")
    assert info.value.key == "objectives.x.ratio.numerator"
    assert "irate() gives events per second" in info.value.message
    assert "use increase(...[${window}])" in info.value.message
    # A file's confidence reaches the objective, so it is refused too, naming the stage.
    with pytest.raises(SpecError, match=r"confidence \(at stage beta\)"):
        load(tmp_path, RATE_RATIO, "confidence: 95%\n")
    # Without confidence, rates are a share like any other; a name ending in rate is no call.
    load(tmp_path, RATE_RATIO)
    load(tmp_path, RATE_RATIO.replace("irate(", "increase(") + "  confidence: 95%\n")


def test_an_sql_ratio_is_not_read_as_promql(tmp_path: Path) -> None:
    objective = ("- name: x\n  backend: db\n  ratio:\n"
                 "    numerator: SELECT rate(1) FROM req\n"
                 "    denominator: SELECT count(*) FROM req\n"
                 "  max: 5%\n  confidence: 95%\n")
    assert only(load(tmp_path, objective)).confidence == Confidence(0.95)
