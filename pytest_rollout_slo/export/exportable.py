"""Which objectives of a spec can become PromQL rules and panels, resolved; the rest, with why.

A generated rule or panel holds the spec's resolved query, so only objectives on a PromQL
backend qualify; an SQL objective is listed with its reason, never silently dropped.
No pytest, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from pytest_rollout_slo.spec.model import Objective, ResolvedObjective, Scalar, Spec
from pytest_rollout_slo.spec.settings import BackendSchema


@dataclass(frozen=True)
class NotExportable:
    objective: str
    reason: str


def language(spec: Spec, objective: Objective, types: Mapping[str, BackendSchema]) -> str:
    backend = spec.backends[objective.backend]
    return str(getattr(types.get(backend.type), "language", ""))


def why_not(spec: Spec, objective: Objective, types: Mapping[str, BackendSchema]) -> str:
    """Empty when ``objective`` can be exported; else the reason, in the user's words."""
    backend = spec.backends[objective.backend]
    if language(spec, objective, types) != "promql":
        return (f"backend {backend.name!r} is {backend.type}, not a PromQL backend; "
                "Prometheus rules and Prometheus panels need PromQL")
    if objective.baseline is not None and objective.baseline.offset is not None:
        return ("its baseline is an earlier time (offset); PromQL cannot shift a whole "
                "expression in time, so no rule can compare it as the gate does")
    return ""


def split(spec: Spec, stage: str, types: Mapping[str, BackendSchema],
          overrides: Mapping[str, Scalar] | None = None
          ) -> tuple[list[ResolvedObjective], list[NotExportable]]:
    """The exportable objectives of ``stage`` (every matrix combination) and the others."""
    objectives, skipped = eligible(spec, stage, types)
    kept = [resolved for objective in objectives
            for resolved in resolve_all(spec, objective, stage, overrides)]
    return kept, skipped


def eligible(spec: Spec, stage: str, types: Mapping[str, BackendSchema]
             ) -> tuple[list[Objective], list[NotExportable]]:
    """The objectives of ``stage`` a PromQL export can carry, and why each other one cannot."""
    kept: list[Objective] = []
    skipped: list[NotExportable] = []
    for objective in spec.objectives:
        if stage not in objective.bounds:
            continue
        reason = why_not(spec, objective, types)
        if reason:
            skipped.append(NotExportable(objective.name, reason))
        else:
            kept.append(objective)
    return kept, skipped


def resolve_all(spec: Spec, objective: Objective, stage: str,
                overrides: Mapping[str, Scalar] | None = None) -> Iterator[ResolvedObjective]:
    for combination in objective.combinations():
        resolved = spec.resolve(objective, stage, combination)
        if overrides:
            queries, variables = resolved.with_variables(overrides)
            resolved = _replace_queries(resolved, queries, variables)
        yield resolved


def _replace_queries(resolved: ResolvedObjective, queries: Mapping[str, str],
                     variables: Mapping[str, Scalar]) -> ResolvedObjective:
    return replace(resolved, queries=dict(queries), variables=dict(variables))


__all__ = ["NotExportable", "language", "resolve_all", "split", "why_not"]
