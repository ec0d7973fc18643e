"""The exposure check of a stage: did the canary get the share of units its flag promises?

A stage whose ``rollout`` states a percentage and whose spec says how to count the canary's
units (``exposure: {canary, all}``) is tested for a sample ratio mismatch before any of its
objectives is judged. A share that differs from the promise beyond chance (p below the
threshold, 0.001 by default), too few units to tell, or counts that are not counts make
every objective of the stage an error: what it measured is not the rollout the flag
describes (a broken flag, a sticky cache, a label missing in one region).

Counts are read as a backend answers them: one value each. A non-integer count (PromQL's
``increase()`` extrapolates to the window's edges) is rounded to the nearest unit, since the
test is of whole units and the extrapolation is within a unit or so of the true count;
NaN, infinite or negative counts, and a canary larger than the whole, are errors. No pytest,
no I/O of its own: the backends are asked through the run's executor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from pytest_rollout_slo.backends.base import Answer, Query, QueryResult
from pytest_rollout_slo.errors import BackendError
from pytest_rollout_slo.plan.executor import BackendKey, Executor
from pytest_rollout_slo.plan.needs import query_params
from pytest_rollout_slo.spec.model import Exposure, Scalar, Spec, Stage, substitute
from pytest_rollout_slo.verdict import srm


@dataclass(frozen=True)
class ExposureResult:
    """What the exposure check saw; ``problem`` is empty when the share matched."""

    units: str
    promised: float
    """The flag's share, 0 to 1."""
    threshold: float
    canary: int | None = None
    total: int | None = None
    p_value: float | None = None
    rounded: bool = False
    """A count was not a whole number and was rounded to one."""
    problem: str = ""

    @property
    def share(self) -> float | None:
        if self.canary is None or not self.total:
            return None
        return self.canary / self.total

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": self.share}


def exposure_queries(exposure: Exposure, variables: dict[str, Scalar],
                     at: float) -> tuple[Query, Query]:
    """The canary and all queries at ``at``, resolved with the stage's variables."""
    params = query_params(variables, at)
    return (Query(substitute(exposure.canary, variables)[0], at, params),
            Query(substitute(exposure.all, variables)[0], at, params))


_MOST_COUNTED = 2 ** 53


class _BadCount(Exception):
    """A count that is not a count; the text says what came back."""


def _count(part: str, answer: Answer) -> tuple[int, bool]:
    if not isinstance(answer, QueryResult):
        raise _BadCount(f"the {part} query returned series over time, not one count")
    if len(answer.samples) != 1:
        raise _BadCount(f"the {part} query returned {len(answer.samples)} values, not one count"
                        + (" (no data)" if not answer.samples else ""))
    value = answer.samples[0].value
    if value is None or math.isnan(value):
        raise _BadCount(f"the {part} query returned no data ({value!r}), not a count")
    if not math.isfinite(value) or value < 0:
        raise _BadCount(f"the {part} query returned {value!r}, not a count of units")
    if value > _MOST_COUNTED:
        raise _BadCount(f"the {part} query returned {value:g}, more units than a float counts "
                        "exactly (2**53): not a count of units")
    whole = round(value)
    return whole, whole != value


def percent_text(share: float) -> str:
    """``2.1%``, ``10%``, ``0.5%``: three significant digits, no trailing zeros."""
    return f"{share * 100:.3g}%"


def p_text(p: float) -> str:
    return "p < 1e-300" if p < 1e-300 else f"p = {p:.2g}"


def judge_exposure(exposure: Exposure, percent: float, canary: Answer,
                   total: Answer) -> ExposureResult:
    """The exposure check's result for the two answers, against the flag's ``percent``."""
    promised, units = percent / 100, exposure.units
    result = ExposureResult(units, promised, exposure.threshold)
    try:
        seen, canary_rounded = _count("canary", canary)
        whole, total_rounded = _count("all", total)
    except _BadCount as exc:
        return _failed(result, str(exc))
    result = replace(result, canary=seen, total=whole, rounded=canary_rounded or total_rounded)
    if seen > whole:
        return _failed(result, f"the canary query counted {seen:,} {units}, more than the "
                               f"{whole:,} of the all query; the queries do not count the same "
                               "units")
    if not srm.testable(whole, promised, exposure.threshold):
        needed = srm.units_needed(promised, exposure.threshold)
        more = (f"about {needed:,} are needed" if needed is not None
                else f"more than {srm.MOST_UNITS:,} would be needed")
        return _failed(result, f"{whole:,} {units} are too few to tell the canary's share from "
                               f"the flag's {percent_text(promised)} at p < "
                               f"{exposure.threshold:g}: {more}")
    p = srm.p_value(seen, whole, promised)
    result = replace(result, p_value=p)
    if p >= exposure.threshold:
        return result
    return replace(result, problem=(
        f"the canary carried {percent_text(seen / whole)} of {whole:,} {units}; the flag promises "
        f"{percent_text(promised)} (sample ratio mismatch, {p_text(p)}): the stage did not get its "
        "share, so its objectives cannot be judged"))


def check_stage(executor: Executor, spec: Spec, stage: Stage, at: float) -> ExposureResult | None:
    """Ask the stage's exposure queries and judge them; None for a stage without the check."""
    exposure, rollout = stage.exposure, stage.rollout
    if exposure is None or rollout is None or rollout.percent is None:
        return None
    key, backend = BackendKey(spec.path, exposure.backend), spec.backends[exposure.backend]
    queries = exposure_queries(exposure, spec.variables_for(stage.name), at)
    executor.prefetch((key, backend, query) for query in queries)
    answers = []
    for part, query in zip(("canary", "all"), queries, strict=True):
        try:
            answers.append(executor.result(key, backend, query))
        except BackendError as exc:
            empty = ExposureResult(exposure.units, rollout.percent / 100, exposure.threshold)
            return _failed(empty, f"the {part} query on backend {exposure.backend} failed: "
                                  f"{exc.message}")
    return judge_exposure(exposure, rollout.percent, *answers)


def _failed(result: ExposureResult, problem: str) -> ExposureResult:
    return replace(result, problem=f"exposure check: {problem}; the stage's objectives cannot "
                                   "be judged")


def exposure_summary(data: Mapping[str, Any]) -> str:
    """One line for a report from :meth:`ExposureResult.to_dict`: the problem, or the match."""
    if data.get("problem"):
        return str(data["problem"])
    return (f"the canary carried {percent_text(data['share'])} of {data['total']:,} "
            f"{data['units']}; the flag promises {percent_text(data['promised'])} (exact binomial "
            f"test, {p_text(data['p_value'])}, a mismatch below {data['threshold']:g}): "
            "as promised")


__all__ = ["ExposureResult", "check_stage", "exposure_queries", "exposure_summary",
           "judge_exposure", "p_text", "percent_text"]
