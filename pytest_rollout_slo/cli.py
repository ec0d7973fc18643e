"""The ``pytest-rollout-slo`` command line: check specs offline; rules, dashboard, schema.

Subcommands (``pytest-rollout-slo --help``):

* ``check SPEC...``: load and validate every stage and matrix combination, list stages and
  objectives; ``--show-queries`` prints each resolved query. Exit 0, or 2 on a spec error
  (``file:line: key: message``, as a collection error says it), like a pytest collection;
* ``rules SPEC --stage STAGE``: Prometheus recording and alerting rules (YAML);
* ``dashboard SPEC``: a Grafana dashboard (JSON);
* ``schema``: the spec format's JSON Schema.

Built on argparse; never imports pytest. Backend types are the built-in ones (``prometheus``,
``sqlite``): a type another plugin adds through the pytest hook is known only inside pytest,
so a spec that uses one is checked with ``pytest --co`` instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pytest_rollout_slo.backends.registry import BUILTIN_TYPES
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.spec.load import ResolvedObjective, Spec, load_spec
from pytest_rollout_slo.spec.model import Objective
from pytest_rollout_slo.spec.schema import schema_text
from pytest_rollout_slo.spec.settings import BackendSchema

EXIT_OK = 0
EXIT_SPEC_ERROR = 2
"""As pytest exits on a collection error."""
EXIT_USAGE = 4
"""As pytest exits on a usage error (an unknown stage)."""

TYPES: dict[str, BackendSchema] = {t.name: t for t in BUILTIN_TYPES}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one subcommand; returns the exit status."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "schema":
            stdout.write(schema_text())
            return EXIT_OK
        if args.command == "check":
            return _check(args.specs, args.show_queries, stdout, stderr)
        spec = load_spec(Path(args.spec), TYPES)
        if args.command == "rules":
            return _rules(spec, args.stage, args.spec, args.output, stdout, stderr)
        return _dashboard(spec, args.stage, args.output, stdout, stderr)
    except SpecError as exc:
        stderr.write(f"spec error: {exc}\n")
        return EXIT_SPEC_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-rollout-slo",
        description="Check SLO specs offline and generate what watches them after GA.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check", help="validate spec files for every stage, offline (exit 0, or 2 on an error)")
    check.add_argument("specs", nargs="+", metavar="SPEC", help="spec files")
    check.add_argument("--show-queries", action="store_true",
                       help="print each resolved query per stage (default: off)")
    rules = commands.add_parser(
        "rules", help="Prometheus recording and alerting rules for one stage (YAML)")
    rules.add_argument("spec", metavar="SPEC")
    rules.add_argument("--stage", required=True, help="the stage whose thresholds the rules "
                                                      "hold, usually the last (ga)")
    rules.add_argument("-o", "--output", help="write to this file (default: standard output)")
    dashboard = commands.add_parser("dashboard", help="a Grafana dashboard (JSON)")
    dashboard.add_argument("spec", metavar="SPEC")
    dashboard.add_argument("--stage", help="the stage whose windows and thresholds the panels "
                                           "use (default: the last stage)")
    dashboard.add_argument("-o", "--output", help="write to this file (default: standard output)")
    commands.add_parser("schema", help="print the spec format's JSON Schema")
    return parser


# -- check ------------------------------------------------------------------------------------

def _check(paths: Sequence[str], show_queries: bool, out: TextIO, err: TextIO) -> int:
    status = EXIT_OK
    for path in paths:
        try:
            spec = load_spec(Path(path), TYPES)
        except SpecError as exc:
            err.write(f"spec error: {exc}\n")
            status = EXIT_SPEC_ERROR
            continue
        out.write(_describe(spec, path, show_queries))
    return status


def _describe(spec: Spec, path: str, show_queries: bool) -> str:
    items = sum(1 for objective in spec.objectives for stage in objective.stages
                for _ in objective.combinations())
    lines = [f"{path}: OK: service {spec.service}, {len(spec.stages)} stages, "
             f"{len(spec.objectives)} objectives, {items} items"]
    for stage in spec.stages:
        window = spec.variables_for(stage).get("window")
        objectives = [o for o in spec.objectives if stage in o.bounds]
        lines.append(f"  stage {stage}" + (f" (window {window})" if window is not None else "")
                     + f": {len(objectives)} objectives")
        for objective in objectives:
            for combination in objective.combinations():
                resolved = spec.resolve(objective, stage, combination)
                backend = spec.backends[objective.backend]
                if objective.track:
                    judged = "tracked"
                elif objective.burn_rate is not None:
                    judged = f"burn rate, target {objective.burn_rate.target * 100:g}%"
                else:
                    judged = _judged(objective, resolved)
                lines.append(f"    {resolved.title}: {judged} [{backend.name}, {backend.type}]")
                if show_queries:
                    for part, query in resolved.gate_queries.items():
                        lines.append(f"      {part}: {query}")
    return "\n".join(lines) + "\n"


def _judged(objective: Objective, resolved: ResolvedObjective) -> str:
    """``max 5.00%, warn max 3.00%``: what the gate checks at this stage, in one phrase."""
    parts = [] if resolved.bounds.empty else [resolved.bounds.text(objective.unit)]
    if not resolved.warn.empty:
        parts.append(f"warn {resolved.warn.text(objective.unit)}")
    baseline = objective.baseline
    if baseline is not None:
        changes = [f"{side} {change.text}" for side, change in (
            ("max_increase", baseline.max_increase), ("max_decrease", baseline.max_decrease))
            if change is not None]
        parts.append(f"{' '.join(changes) or 'bounds'} against {baseline.describe()}")
    sustained = objective.sustained
    if sustained is not None:
        parts.append(f"at each {sustained.step_text} over {sustained.over_text}, at most "
                     f"{sustained.max_violations} outside")
    return ", ".join(parts)


# -- rules and dashboard ---------------------------------------------------------------------

def _stage(spec: Spec, stage: str | None, err: TextIO) -> str | None:
    if stage is None:
        return list(spec.stages)[-1]
    if stage not in spec.stages:
        err.write(f"usage error: {spec.path}: unknown stage {stage!r}; stages: "
                  f"{', '.join(spec.stages)}\n")
        return None
    return stage


def _write(text: str, output: str | None, out: TextIO) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        out.write(text)


def _rules(spec: Spec, stage: str | None, source: str, output: str | None, out: TextIO,
           err: TextIO) -> int:
    from pytest_rollout_slo.export.rules import build_rules

    chosen = _stage(spec, stage, err)
    if chosen is None:
        return EXIT_USAGE
    rules = build_rules(spec, chosen, TYPES)
    _write(rules.text(source), output, out)
    for item in rules.skipped:
        err.write(f"not exportable: {item.objective}: {item.reason}\n")
    return EXIT_OK


def _dashboard(spec: Spec, stage: str | None, output: str | None, out: TextIO,
               err: TextIO) -> int:
    chosen = _stage(spec, stage, err)
    if chosen is None:
        return EXIT_USAGE
    try:
        from pytest_rollout_slo.export.dashboard import dashboard_json
    except ImportError as exc:
        err.write(f"the dashboard needs grafana-foundation-sdk (Python >= 3.11): "
                  f"pip install 'pytest-rollout-slo[dashboard]' ({exc})\n")
        return EXIT_USAGE
    text, skipped = dashboard_json(spec, chosen, TYPES)
    _write(text, output, out)
    for item in skipped:
        err.write(f"not exportable: {item.objective}: {item.reason}\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main"]
