"""The JSON Schema of the spec format agrees with the loader.

Every spec in the repository validates. Every spec mistake of ``test_spec.py`` and
``test_spec_gates.py`` that a schema can express is written here again as a complete spec
with that one mistake: the loader must refuse it (so the case stays honest) and the schema
must refuse it at the same place, by the named keyword. Valid specs must pass both.

What a schema cannot express, so only the loader refuses it:

- YAML-level mistakes: a duplicate mapping key (parsers keep the last one), a non-string key
  (``on:`` read as a boolean), bad YAML syntax, a NaN threshold (``.nan``; JSON has no NaN);
- cross references: an unknown backend name, stage (in ``stages``, ``thresholds``) or
  backend type (another plugin may add it), ``histogram_quantile`` on a non-PromQL backend;
- relations between values: ``min > max``, ``warn`` outside the bounds or ``warn.min >
  warn.max``, a stage left without a bound by its ``thresholds``, ``step > over``, more than
  10,000 points, ``short > long``;
- query texts: an undefined ``${variable}``, ``${env:...}`` in a query, a burn-rate ratio
  that does not use ``${window}`` or ``:window_start``;
- duplicate objective names (``uniqueItems`` compares whole objectives, not names).

The schema is a little stricter than the loader in places where the run would fail anyway
(an ``${env:...}`` string standing for a whole mapping setting, a duration for a quantile).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from specdata import SPEC_HEADER

from pytest_rollout_slo.backends.base import BackendType
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.quantity import UNITS
from pytest_rollout_slo.session import pytest_slo_backend_types
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import ON_NO_DATA
from pytest_rollout_slo.spec.objectives import OBJECTIVE_KEYS
from pytest_rollout_slo.spec.schema import SCHEMA_FILE, backend_schema, load_schema, main

ROOT = Path(__file__).resolve().parents[1]
BACKEND_TYPES: Mapping[str, BackendType] = {t.name: t for t in pytest_slo_backend_types()}
SCHEMA = load_schema()
# Editors run draft-07 engines; the schema uses only keywords both drafts read the same way.
VALIDATORS = [jsonschema.Draft202012Validator(SCHEMA), jsonschema.Draft7Validator(SCHEMA)]

HEADER = SPEC_HEADER
QUERY = "- name: x\n  query: up\n  max: 1\n"
RATIO = """\
- name: x
  ratio:
    numerator: sum(increase(errors[${window}]))
    denominator: sum(increase(requests[${window}]))
"""
BURN = "burn_rate: {target: 99%, alerts: [{long: 1h, short: 5m, factor: 14.4}]}"
X = ("objectives", 0)  # objective x, the first
Where = tuple[str | int, ...]


def spec(objectives: str = QUERY, *, top: str = "", header: str = HEADER) -> str:
    """A complete spec: ``header``, then ``top`` keys, then the objectives."""
    return header + textwrap.dedent(top) + "objectives:\n" + textwrap.dedent(objectives)


def objective(rest: str, head: str = QUERY) -> str:
    """Objective ``x`` (by default ``query: up, max: 1``) with more keys."""
    return head + textwrap.indent(textwrap.dedent(rest), "  ")


def header(old: str, new: str) -> str:
    assert old in HEADER
    return HEADER.replace(old, new)


def errors(document: Any, validator: jsonschema.protocols.Validator) -> set[tuple[Where, str]]:
    """Every error's place and keyword, including those inside anyOf and oneOf."""
    found: set[tuple[Where, str]] = set()
    stack = list(validator.iter_errors(document))
    while stack:
        error = stack.pop()
        found.add((tuple(error.absolute_path), str(error.validator)))
        stack.extend(_same_type(error.context))
    return found


def _same_type(context: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    """Leave out the oneOf branches of other backend types: they only say the type differs."""
    branches: dict[object, list[jsonschema.ValidationError]] = {}
    for error in context:
        branches.setdefault(error.relative_schema_path[0], []).append(error)
    return [error for branch in branches.values()
            if not any(list(e.relative_path) == ["type"] and e.validator in ("const", "not")
                       for e in branch)
            for error in branch]


def loader_accepts(tmp_path: Path, text: str) -> None:
    path = tmp_path / "spec.slo.yaml"
    path.write_text(text, encoding="utf-8")
    load_spec(path, BACKEND_TYPES)


# -- the schema itself -------------------------------------------------------------------------


def test_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_ships_in_the_package() -> None:
    shipped = ROOT / "pytest_rollout_slo" / "spec" / SCHEMA_FILE
    assert json.loads(shipped.read_text(encoding="utf-8")) == SCHEMA


def test_main_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    main()
    assert json.loads(capsys.readouterr().out) == SCHEMA


@pytest.mark.parametrize("backend_type", BACKEND_TYPES.values(), ids=BACKEND_TYPES.keys())
def test_builtin_backend_entries_are_built_from_their_settings(backend_type: BackendType
                                                               ) -> None:
    name = backend_type.name
    assert SCHEMA["$defs"][f"backend_{name}"] == backend_schema(name, backend_type.settings), (
        f"regenerate $defs.backend_{name} of {SCHEMA_FILE}:\n"
        + json.dumps(backend_schema(name, backend_type.settings), indent=2))


def test_other_backend_types_are_left_open() -> None:
    branches = SCHEMA["$defs"]["backend"]["oneOf"]
    assert [b["$ref"] for b in branches] == [
        *(f"#/$defs/backend_{name}" for name in BACKEND_TYPES), "#/$defs/backend_other"]
    other = SCHEMA["$defs"]["backend_other"]["properties"]["type"]
    assert sorted(other["not"]["enum"]) == sorted(BACKEND_TYPES)


def test_keys_and_choices_match_the_loader() -> None:
    objective_schema = SCHEMA["$defs"]["objective"]
    assert list(objective_schema["properties"]) == list(OBJECTIVE_KEYS)
    assert objective_schema["properties"]["unit"]["enum"] == list(UNITS)
    assert objective_schema["properties"]["on_no_data"]["enum"] == list(ON_NO_DATA)


# -- valid specs ---------------------------------------------------------------------------------

REPOSITORY_SPECS = sorted([*ROOT.glob("slo_specs/*.yaml"), *ROOT.glob("slo_specs/*.yml"),
                           *ROOT.glob("examples/**/*.slo.yaml"),
                           *ROOT.glob("examples/**/*.slo.yml")])


def test_the_repository_has_specs() -> None:
    assert len(REPOSITORY_SPECS) >= 2


@pytest.mark.parametrize("path", REPOSITORY_SPECS,
                         ids=[p.relative_to(ROOT).as_posix() for p in REPOSITORY_SPECS])
@pytest.mark.parametrize("validator", VALIDATORS, ids=["2020-12", "draft-07"])
def test_repository_spec_validates(path: Path, validator: jsonschema.protocols.Validator
                                   ) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert errors(document, validator) == set()


VALID = [
    pytest.param(spec(), id="minimal"),
    pytest.param(spec(header=header("  beta: {}\n", "  beta:\n")), id="stage-without-body"),
    pytest.param(spec(header=header("variables: {window: 1h, feature: resolver}\n",
                                    "variables:\n")), id="variables-null"),
    pytest.param(spec(header=header(
        '  prom: {type: prometheus, url: "http://prometheus:9090"}\n', """\
  prom:
    type: prometheus
    url: ${env:PROMETHEUS_URL}
    headers: {X-Scope-OrgID: team-a, X-Count: 3}
    basic_auth: {username: u, password: "${env:PROM_PASSWORD}"}
    tls: {verify: false, ca_file: ca.pem, cert: c.pem, key: c.key}
    timeout: ${env:PROM_TIMEOUT:-30s}
    params: {dedup: "true"}
    on_warnings: ignore
    max_concurrency: 4
""")), id="prometheus-every-setting"),
    pytest.param(spec(header=header("  db: {type: sqlite, path: events.db}\n",
                                    "  db: {type: sqlite, path: e.db, timeout: 90}\n")),
                 id="sqlite-timeout-seconds"),
    pytest.param(spec(objective("""\
        unit: percent
        min: 0.5%
        warn: {max: 0.9}
        stages: [ga, beta]
        thresholds:
          ga: {max: 2%, warn: {max: 1%}}
        on_no_data: skip
        description: a query
        backend: prom
        """)), id="bounds-per-stage"),
    pytest.param(spec(RATIO.replace("denominator:", "min_denominator: 50\n    denominator:")
                      + "  min: 0\n  max: 5%\n"), id="ratio"),
    pytest.param(spec(RATIO + "  " + BURN + "\n"), id="burn-rate"),
    pytest.param(spec(objective("""\
        sustained: {over: 2d, step: 1h, max_violations: 2}
        matrix: {region: [eu, us], shard: [1, 2]}
        """, QUERY.replace("up", 'up{region="${region}", shard="${shard}"}'))),
        id="sustained-and-matrix"),
    pytest.param(spec(objective(
        "baseline: {variables: {feature: control}, max_increase: 10%, max_decrease: 0.5s}\n",
        "- name: x\n  query: up{feature=\"${feature}\"}\n")), id="baseline-change-only"),
    pytest.param(spec(objective("baseline: {offset: 7d}\n")), id="baseline-offset-with-max"),
    pytest.param(spec("""\
        - name: x
          backend: db
          quantile: {q: 99%, values: SELECT v FROM t}
          max: 3s
        - name: y
          histogram_quantile: {metric: latency_seconds, quantile: 0.5, selector: 'job="a"', by: pod}
          max: 1s
        """), id="quantiles"),
    pytest.param(spec(top="matrix: {region: [eu, us]}\n",
                      objectives=QUERY.replace("up", 'up{region="${region}"}')),
                 id="file-matrix"),
    pytest.param(spec(RATIO + "  max: 5%\n  confidence: 95%\n  on_inconclusive: warn\n",
                      top="confidence: {level: 0.9, method: wilson}\n",
                      header=header("  beta: {}\n", "  beta: {confidence: 99%}\n")),
                 id="confidence"),
]


@pytest.mark.parametrize("text", VALID)
def test_valid_spec_passes_loader_and_schema(tmp_path: Path, text: str) -> None:
    loader_accepts(tmp_path, text)
    for validator in VALIDATORS:
        assert errors(yaml.safe_load(text), validator) == set()


def test_a_backend_type_from_another_plugin_is_accepted_with_any_settings() -> None:
    text = spec(header=header("  db: {type: sqlite, path: events.db}\n",
                              "  db: {type: influx, url: http://influx, org: {a: [1]}}\n"))
    for validator in VALIDATORS:
        assert errors(yaml.safe_load(text), validator) == set()


# -- mistakes both refuse ------------------------------------------------------------------------

B = ("backends",)
INVALID = [
    # test_spec.py: unknown keys
    pytest.param(spec(top="owner: team-a\n"), (), "additionalProperties", id="unknown-top"),
    pytest.param(spec(objective("maximum: 5%\n")), X, "additionalProperties",
                 id="unknown-objective"),
    pytest.param(spec(header=header("  beta: {}\n", "  beta: {window: 6h}\n")),
                 ("stages", "beta"), "additionalProperties", id="unknown-stage-key"),
    pytest.param(spec(RATIO + "    min_count: 5\n  max: 5%\n"), (*X, "ratio"),
                 "additionalProperties", id="unknown-ratio-key"),
    pytest.param(spec(header=header("path: events.db}", "path: e.db, url: http://x}")),
                 (*B, "db"), "additionalProperties", id="unknown-backend-setting"),
    pytest.param(spec(header=header('url: "http://prometheus:9090"}',
                                    'url: "http://p", basic_auth: {username: u, pass: p}}')),
                 (*B, "prom", "basic_auth"), "additionalProperties",
                 id="unknown-nested-backend-setting"),
    pytest.param(spec(objective("thresholds: {beta: {max: 2%, maximum: 3%}}\n")),
                 (*X, "thresholds", "beta"), "additionalProperties", id="unknown-thresholds-key"),
    # test_spec.py: wrong types
    pytest.param(spec(header=header("service: svc", "service: 5")), ("service",), "type",
                 id="service-number"),
    pytest.param(spec(header=header("service: svc", 'service: ""')), ("service",), "pattern",
                 id="service-empty"),
    pytest.param(HEADER + "objectives:\n  name: x\n  query: up\n", ("objectives",), "type",
                 id="objectives-mapping"),
    pytest.param(HEADER + "objectives: []\n", ("objectives",), "minItems", id="objectives-empty"),
    pytest.param(spec(header=header("  beta: {}\n  ga: {}\n", "  {}\n").replace(
        "stages:\n  {}", "stages: {}")), ("stages",), "minProperties", id="stages-empty"),
    pytest.param(spec(header=header("stages:\n  beta: {}\n  ga: {}\n", "stages: [beta, ga]\n")),
                 ("stages",), "type", id="stages-list"),
    pytest.param(spec(header=header(
        '  prom: {type: prometheus, url: "http://prometheus:9090"}\n  db: {type: sqlite, path: '
        'events.db}\n', "").replace("backends:\n", "backends: {}\n")), B, "minProperties",
        id="backends-empty"),
    pytest.param(spec(header=header(
        '  prom: {type: prometheus, url: "http://prometheus:9090"}\n  db: {type: sqlite, path: '
        'events.db}\n', "")), B, "type", id="backends-null"),
    pytest.param(spec(RATIO + "    min_denominator: -1\n  max: 5%\n"),
                 (*X, "ratio", "min_denominator"), "minimum", id="min-denominator-negative"),
    pytest.param(spec(RATIO + "    min_denominator: many\n  max: 5%\n"),
                 (*X, "ratio", "min_denominator"), "type", id="min-denominator-string"),
    pytest.param(spec(header=header("feature: resolver}", "feature: [a, b]}")),
                 ("variables", "feature"), "type", id="variable-list"),
    pytest.param(spec(header=header("  beta: {}\n", "  beta: {variables: {feature: {a: b}}}\n")),
                 ("stages", "beta", "variables", "feature"), "type", id="stage-variable-mapping"),
    pytest.param(spec(header=header("path: events.db}", "path: 42}")), (*B, "db", "path"),
                 "type", id="backend-setting-type"),
    pytest.param(spec(objective("on_no_data: ignore\n")), (*X, "on_no_data"), "enum",
                 id="on-no-data"),
    pytest.param(HEADER + "objectives:\n  - SELECT 1\n", X, "type", id="objective-not-mapping"),
    pytest.param(spec(objective("unit: ms\n")), (*X, "unit"), "enum", id="unit"),
    # test_spec.py: version, names, measures, thresholds, windows, backends, file shape
    pytest.param(spec(header=header("version: 1\n", "")), (), "required", id="version-missing"),
    pytest.param(spec(header=header("version: 1", "version: 2")), ("version",), "const",
                 id="version-2"),
    pytest.param(spec(header=header("version: 1", 'version: "1"')), ("version",), "const",
                 id="version-string"),
    pytest.param(spec(header=header("version: 1", "version: true")), ("version",), "const",
                 id="version-boolean"),
    pytest.param(spec("- name: Error_Rate\n  query: up\n  max: 1\n"), (*X, "name"), "pattern",
                 id="name-uppercase"),
    pytest.param(spec(objective("ratio: {numerator: a, denominator: b}\n")), (*X, "ratio"),
                 "not", id="query-and-ratio"),
    pytest.param(spec("- name: x\n  max: 5%\n"), X, "anyOf", id="no-query"),
    *(pytest.param(spec(f"- name: x\n  query: up\n  max: {bad}\n"), (*X, "max"), "anyOf",
                   id=f"threshold-{bad}")
      for bad in ("5 percent", "fast", "true", "5%%", "-5s")),
    pytest.param(spec(header=header("window: 1h,", "window: soon,")), ("variables", "window"),
                 "anyOf", id="window-not-a-duration"),
    pytest.param(spec(header=header("  beta: {}\n", "  beta: {variables: {window: 6 hours}}\n")),
                 ("stages", "beta", "variables", "window"), "anyOf",
                 id="stage-window-not-a-duration"),
    pytest.param(spec(header=header("path: events.db}", "path: e.db, timeout: a while}")),
                 (*B, "db", "timeout"), "anyOf", id="backend-duration"),
    pytest.param(spec(header=header("path: events.db}", "timeout: 5s}")), (*B, "db"),
                 "required", id="backend-required-setting"),
    pytest.param(spec(header=header("{type: sqlite, path: events.db}", "{path: e.db}")),
                 (*B, "db"), "required", id="backend-without-type"),
    pytest.param(spec(header=header("{type: prometheus, ", "{type: prometheus, ui: grafana, ")),
                 (*B, "prom", "ui"), "anyOf", id="backend-choice"),
    pytest.param("", (), "type", id="empty-file"),
    pytest.param("- version: 1\n- service: svc\n", (), "type", id="list-file"),
    # test_spec_gates.py: unknown keys in the new sections
    pytest.param(spec(objective("sustained: {over: 2d, step: 1h, limit: 2}\n")),
                 (*X, "sustained"), "additionalProperties", id="unknown-sustained"),
    pytest.param(spec(objective("baseline: {offset: 1d, max_increase: 1%, cohort: c}\n")),
                 (*X, "baseline"), "additionalProperties", id="unknown-baseline"),
    pytest.param(spec(RATIO + "  burn_rate: {target: 99%, alerts: [{long: 1h, short: 5m, "
                      "factor: 2}], window: 1h}\n"), (*X, "burn_rate"), "additionalProperties",
                 id="unknown-burn-rate"),
    pytest.param(spec(RATIO + "  burn_rate: {target: 99%, alerts: [{long: 1h, short: 5m, "
                      "factor: 2, severity: page}]}\n"), (*X, "burn_rate", "alerts", 0),
                 "additionalProperties", id="unknown-alert"),
    pytest.param(spec("- name: x\n  backend: db\n  quantile: {q: 0.9, values: a, method: b}\n"
                      "  max: 1\n"), (*X, "quantile"), "additionalProperties",
                 id="unknown-quantile"),
    pytest.param(spec("- name: x\n  histogram_quantile: {metric: m, quantile: 0.9, le: 1}\n"
                      "  max: 1\n"), (*X, "histogram_quantile"), "additionalProperties",
                 id="unknown-histogram-quantile"),
    pytest.param(spec(objective("warn: {maximum: 3%}\n")), (*X, "warn"), "additionalProperties",
                 id="unknown-warn"),
    pytest.param(spec(objective("thresholds: {ga: {warn: {max: 1%, level: high}}}\n")),
                 (*X, "thresholds", "ga", "warn"), "additionalProperties",
                 id="unknown-stage-warn"),
    # test_spec_gates.py: sustained
    pytest.param(spec(objective("sustained: {over: 2d, step: 1h, max_violations: -1}\n")),
                 (*X, "sustained", "max_violations"), "minimum", id="violations-negative"),
    pytest.param(spec(objective("sustained: {over: 2d, step: 1h, max_violations: 1.5}\n")),
                 (*X, "sustained", "max_violations"), "type", id="violations-fraction"),
    pytest.param(spec(objective("sustained: {over: 2d, step: 1h, max_violations: true}\n")),
                 (*X, "sustained", "max_violations"), "type", id="violations-boolean"),
    pytest.param(spec(objective("sustained: {over: 2 days, step: 1h}\n")),
                 (*X, "sustained", "over"), "anyOf", id="over-not-a-duration"),
    pytest.param(spec(objective("sustained: {over: 2d, step: 0s}\n")),
                 (*X, "sustained", "step"), "anyOf", id="step-zero"),
    pytest.param(spec(objective("sustained: {step: 1h}\n")), (*X, "sustained"), "required",
                 id="sustained-without-over"),
    pytest.param(spec(objective("sustained: 2d\n")), (*X, "sustained"), "type",
                 id="sustained-not-a-mapping"),
    # test_spec_gates.py: baseline
    pytest.param(spec(objective("baseline: {variables: {cohort: c}, offset: 7d}\n")),
                 (*X, "baseline"), "oneOf", id="baseline-both"),
    pytest.param(spec(objective("baseline: {max_increase: 10%}\n")), (*X, "baseline"), "oneOf",
                 id="baseline-neither"),
    pytest.param(spec(objective("baseline: {offset: 7d, max_increase: -10%}\n")),
                 (*X, "baseline", "max_increase"), "anyOf", id="change-negative-percent"),
    pytest.param(spec(objective("baseline: {offset: 7d, max_decrease: -0.5}\n")),
                 (*X, "baseline", "max_decrease"), "anyOf", id="change-negative-number"),
    pytest.param(spec(objective("baseline: {offset: 7d, max_increase: lots}\n")),
                 (*X, "baseline", "max_increase"), "anyOf", id="change-not-a-quantity"),
    pytest.param(spec(objective("baseline: {offset: 7 days}\n")), (*X, "baseline", "offset"),
                 "anyOf", id="offset-not-a-duration"),
    pytest.param(spec(objective("baseline: {offset: 0s}\n")), (*X, "baseline", "offset"),
                 "anyOf", id="offset-zero"),
    pytest.param(spec(objective("baseline: {variables: {}}\n")), (*X, "baseline", "variables"),
                 "minProperties", id="baseline-variables-empty"),
    pytest.param(spec(objective("baseline: {variables: {stage: ga}}\n")),
                 (*X, "baseline", "variables"), "not", id="baseline-variable-builtin"),
    pytest.param(spec("- name: x\n  query: up\n  baseline: {offset: 1d}\n"), X, "anyOf",
                 id="baseline-without-any-bound"),
    # test_spec_gates.py: quantile and histogram_quantile
    *(pytest.param(spec(f"- name: x\n  backend: db\n  quantile: {{q: {q}, values: a}}\n"
                        "  max: 1\n"), (*X, "quantile", "q"), "anyOf", id=f"q-{q}")
      for q in ("1.5", "-0.1", "150%", "high")),
    pytest.param(spec("- name: x\n  backend: db\n  quantile: {q: 0.9}\n  max: 1\n"),
                 (*X, "quantile"), "required", id="quantile-without-values"),
    *(pytest.param(spec(f"- name: x\n  histogram_quantile: {body}\n  max: 1s\n"),
                   (*X, "histogram_quantile", *key), keyword, id=f"histogram-{name}")
      for body, key, keyword, name in (
          ("{metric: 'latency-seconds', quantile: 0.95}", ("metric",), "pattern", "dash"),
          ("{metric: '1latency', quantile: 0.95}", ("metric",), "pattern", "digit"),
          ("{metric: m, quantile: 1.5}", ("quantile",), "anyOf", "quantile"),
          ("{metric: m, quantile: 0.9, by: [le-bad]}", ("by",), "anyOf", "by"),
          ("{quantile: 0.9}", (), "required", "no-metric"))),
    # test_spec_gates.py: warn
    pytest.param(spec(objective("warn: {}\n")), (*X, "warn"), "minProperties", id="warn-empty"),
    pytest.param(spec(objective("warn: {max: lots}\n")), (*X, "warn", "max"), "anyOf",
                 id="warn-bad-value"),
    pytest.param(spec(objective("warn: 3%\n")), (*X, "warn"), "type", id="warn-not-a-mapping"),
    pytest.param(spec("- name: x\n  query: up\n  warn: {max: 3%}\n"), X, "anyOf",
                 id="warn-alone-is-not-a-bound"),
    # test_spec_gates.py: burn rate
    pytest.param(spec("- name: x\n  query: up\n  " + BURN + "\n"), X, "required",
                 id="burn-rate-without-ratio"),
    *(pytest.param(spec(RATIO + f"  {key}: {value}\n  {BURN}\n"), (*X, key), "not",
                   id=f"burn-rate-with-{key}")
      for key, value in (("max", "1%"), ("min", "1%"), ("warn", "{max: 1%}"),
                         ("thresholds", "{ga: {max: 1%}}"))),
    *(pytest.param(spec(RATIO + f"  burn_rate: {{target: 99%, alerts: [{alert}]}}\n"),
                   (*X, "burn_rate", "alerts", 0, *key), keyword, id=f"alert-{name}")
      for alert, key, keyword, name in (
          ("{long: 1h, short: 5m, factor: 0}", ("factor",), "exclusiveMinimum", "factor-0"),
          ("{long: 1h, short: 5m, factor: -2}", ("factor",), "exclusiveMinimum", "factor-neg"),
          ("{long: 1h, short: 5m, factor: fast}", ("factor",), "type", "factor-string"),
          ("{long: 1h, short: 5m}", (), "required", "no-factor"),
          ("{short: 5m, factor: 2}", (), "required", "no-long"),
          ("{long: 1 hour, short: 5m, factor: 2}", ("long",), "anyOf", "long-1-hour"))),
    *(pytest.param(spec(RATIO + f"  burn_rate: {{target: {target}, alerts: [{{long: 1h, "
                                "short: 5m, factor: 2}]}\n"),
                   (*X, "burn_rate", "target"), "anyOf", id=f"target-{target}")
      for target in ("100%", "0%", "1", "101%", "high")),
    *(pytest.param(spec(RATIO + f"  burn_rate: {{target: 99%, alerts: {alerts}}}\n"),
                   (*X, "burn_rate", "alerts"), keyword, id=f"alerts-{alerts}")
      for alerts, keyword in (("[]", "minItems"), ("{long: 1h}", "type"), ("1h", "type"))),
    # test_spec_gates.py: one gate per objective
    pytest.param(spec(objective("sustained: {over: 2d, step: 1h}\nbaseline: {offset: 7d}\n")),
                 (*X, "baseline"), "not", id="sustained-and-baseline"),
    pytest.param(spec(RATIO + "  baseline: {offset: 7d, max_increase: 10%}\n  " + BURN + "\n"),
                 (*X, "burn_rate"), "not", id="baseline-and-burn-rate"),
    # test_spec_gates.py: matrix
    *(pytest.param(spec(objective(f"matrix: {matrix}\n")), (*X, "matrix", *key), keyword,
                   id=f"matrix-{matrix}")
      for matrix, key, keyword in (
          ("{}", (), "minProperties"),
          ("{region: []}", ("region",), "minItems"),
          ("{region: eu}", ("region",), "type"),
          ("{region: [eu, {a: b}]}", ("region", 1), "type"),
          ("{region: [eu, true]}", ("region", 1), "type"),
          ("{region: [eu, us, eu]}", ("region",), "uniqueItems"),
          ("{Region-1: [eu]}", (), "pattern"),
          ("{stage: [eu]}", (), "not"),
          ("{service: [eu]}", (), "not"),
          ("[eu, us]", (), "type"))),
    pytest.param(spec(top="matrix: {region: [eu, eu]}\n"), ("matrix", "region"), "uniqueItems",
                 id="file-matrix-twice"),
    # tracked objectives, alert settings and the dashboard block (test_cli.py)
    pytest.param(spec(objective("track: true\n")), (*X, "max"), "not", id="tracked-with-max"),
    pytest.param(spec(objective("track: yes please\n")), (*X, "track"), "type",
                 id="track-string"),
    pytest.param(spec(objective("alert: {for: soon}\n")), (*X, "alert", "for"), "anyOf",
                 id="alert-for"),
    pytest.param(spec(objective("alert: {page: true}\n")), (*X, "alert"),
                 "additionalProperties", id="alert-unknown-key"),
    pytest.param(spec(objective("alert: {labels: {alertname: x}}\n")),
                 (*X, "alert", "labels"), "not", id="alert-label-reserved"),
    pytest.param(spec(objective("alert: {labels: {team: 5}}\n")),
                 (*X, "alert", "labels", "team"), "type", id="alert-label-number"),
    pytest.param(spec(top="dashboard: {stage_label: rollout-stage}\n"),
                 ("dashboard", "stage_label"), "pattern", id="dashboard-stage-label"),
    pytest.param(spec(top="dashboard: {name: x}\n"), ("dashboard",), "additionalProperties",
                 id="dashboard-unknown-key"),
]


@pytest.mark.parametrize(("text", "where", "keyword"), INVALID)
def test_mistake_refused_by_loader_and_schema(tmp_path: Path, text: str, where: Where,
                                              keyword: str) -> None:
    with pytest.raises(SpecError):
        loader_accepts(tmp_path, text)
    document = yaml.safe_load(text)
    for validator in VALIDATORS:
        found = errors(document, validator)
        assert (where, keyword) in found, sorted(found, key=str)
