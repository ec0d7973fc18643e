"""Validation of ``exposure:``, the counts a stage's sample-ratio test reads.

Written at the top of a file (for every stage whose ``rollout`` states a percentage) or on a
stage (replacing the file's); a stage-level one needs ``rollout.percent``. Its queries are
checked like an objective's: every ``${name}`` defined and every SQL ``:name`` bound at each
stage it applies to, and every resolved text passing the backend's query check. The test
itself needs SciPy, so a spec with ``exposure`` is refused at load without it, naming the
extra. No pytest, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_rollout_slo.quantity import QuantityError, parse_quantity, quote
from pytest_rollout_slo.spec.gates import scipy_installed
from pytest_rollout_slo.spec.model import Exposure, Rollout, Scalar, substitute
from pytest_rollout_slo.spec.objectives import sql_parameters
from pytest_rollout_slo.spec.reader import SpecReader, kind_of, listing
from pytest_rollout_slo.spec.yamlload import YamlMap

EXPOSURE_KEYS = ("backend", "canary", "all", "units", "threshold")
UNITS = ("users", "sessions", "requests")
DEFAULT_THRESHOLD = 0.001
"""p < 0.001: the usual threshold of a sample-ratio-mismatch check. It is run on every
stage, where a false alarm holds a healthy rollout, so it is far stricter than 0.05; a
broken flag (2 % instead of 10 % of thousands of users) is still found at p far below it."""


def parse_exposure(reader: SpecReader, value: Any, line: int, where: str,
                   backends: Mapping[str, Any]) -> YamlMap:
    """Check the shape of an ``exposure`` mapping; the Exposure is made per stage."""
    node = reader.mapping(value, line, where)
    reader.keys(node, EXPOSURE_KEYS, f"{where}.")
    backend = reader.string(node, "backend", f"{where}.", required=True)
    if backend not in backends:
        raise reader.error(node.line_of("backend"), f"{where}.backend",
                           f"unknown backend {quote(backend)}; backends: {listing(backends)}")
    for key in ("canary", "all"):
        reader.string(node, key, f"{where}.", required=True)
    units = reader.string(node, "units", f"{where}.")
    if units and units not in UNITS:
        raise reader.error(node.line_of("units"), f"{where}.units",
                           f"got {quote(units)}; accepted: {', '.join(UNITS)}")
    threshold(reader, node, where)
    if not scipy_installed():
        raise reader.error(line, where, "the exposure check's binomial test needs SciPy, which "
                                        "is not installed; install it with: pip install "
                                        "'pytest-rollout-slo[stats]'")
    return node


def threshold(reader: SpecReader, node: YamlMap, where: str) -> float:
    """``threshold``: a p-value from 0 to 0.5, as a number (0.001) or a percentage (0.1%)."""
    if "threshold" not in node:
        return DEFAULT_THRESHOLD
    raw = node["threshold"]
    message = (f"must be a p-value above 0 and at most 0.5 (0.001 or 0.1%; default 0.001), got "
               f"{kind_of(raw) if isinstance(raw, (YamlMap, list, bool)) else quote(raw)}")
    if isinstance(raw, bool):
        raise reader.error(node.line_of("threshold"), f"{where}.threshold", message)
    try:
        value, unit = parse_quantity(raw)
    except QuantityError:
        raise reader.error(node.line_of("threshold"), f"{where}.threshold", message) from None
    if unit not in ("number", "percent") or not 0 < value <= 0.5:
        raise reader.error(node.line_of("threshold"), f"{where}.threshold", message)
    return value


def stage_exposure(reader: SpecReader, node: YamlMap, where: str, rollout: Rollout,
                   stage: str, variables: Mapping[str, Scalar], sql: bool) -> Exposure:
    """The Exposure of ``stage``, its queries checked against the stage's variables."""
    names = {*variables, "at"}
    if "window" in variables:
        names.update(("window_start", "window_end"))
    check = reader.query_checks.get(str(node["backend"]))
    for key in ("canary", "all"):
        text, missing = substitute(str(node[key]), variables)
        line, key_path = node.line_of(key), f"{where}.{key}"
        for name in missing:
            problem = ("is not allowed in queries; environment variables belong in backend "
                       "settings only" if name.startswith("env:")
                       else f"is not defined at stage {quote(stage)}; defined: "
                            f"{listing(sorted(variables), 30)}")
            raise reader.error(line, key_path, f"${{{quote(name, bare=True)}}} {problem}")
        for name in sql_parameters(text) if sql else ():
            if name not in names:
                raise reader.error(line, key_path,
                                   f"the query uses :{name}, which is not bound at stage "
                                   f"{quote(stage)}; bound: "
                                   f"{listing((f':{n}' for n in sorted(names)), 30)}")
        refused = check(text) if check is not None else None
        if refused:
            raise reader.error(line, key_path, refused)
    return Exposure(str(node["backend"]), str(node["canary"]), str(node["all"]),
                    str(node.get("units") or rollout.of), threshold(reader, node, where),
                    node.line)


__all__ = ["DEFAULT_THRESHOLD", "EXPOSURE_KEYS", "UNITS", "parse_exposure", "stage_exposure",
           "threshold"]
