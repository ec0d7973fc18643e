"""Real server: conflict_resolver.yaml x 3 stages x 20 regions against a real Prometheus.

    python benchmarks/bench_real_server.py [--regions 20]

Starts Prometheus the way the test suite does (``tests/servers.py``: promtool backfill of the
quickstart simulator's traffic, an idle server on loopback) and writes the simulator's event
database for the spec's SQLite objectives. The spec gets a ``matrix`` of regions; the data has
no region label, so each query carries a comment naming its region (``# region r07`` in
PromQL, ``-- region r07`` in SQL): every region's queries are distinct, none is shared, and
each is a real query over the same data. One pytest run per stage; reports the run loop's
wall time and queries per second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from _support import ROOT, machine, prepare, prometheus_tools, run_pytest

sys.path.insert(0, str(ROOT / "tests"))
sys.path.append(str(ROOT / "examples" / "quickstart"))

from servers import PrometheusServer
from simulate import AT_UNIX, STAGES, ensure_database, simulate, write_openmetrics

SPEC = ROOT / "slo_specs" / "conflict_resolver.yaml"
QUERY_KEYS = ("query", "numerator", "denominator")


def with_regions(spec: dict[str, Any], regions: int) -> dict[str, Any]:
    """The spec with a matrix of ``regions`` regions, each region's queries made distinct."""
    comment = {name: "--" if body["type"] == "sqlite" else "#"
               for name, body in spec["backends"].items()}
    default = next(iter(spec["backends"]))
    for objective in spec["objectives"]:
        mark = comment[objective.get("backend", default)]
        for holder in (objective, objective.get("ratio") or {}):
            for key in QUERY_KEYS:
                if key in holder:
                    holder[key] = f"{holder[key]}\n{mark} region ${{region}}"
    spec["matrix"] = {"region": [f"r{n:02d}" for n in range(1, regions + 1)]}
    return spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=20)
    args = parser.parse_args(argv)
    prometheus, promtool, version = prometheus_tools()
    spec = with_regions(yaml.safe_load(SPEC.read_text(encoding="utf-8")), args.regions)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        directory = prepare(Path(tmp) / "run")
        (directory / "conflict_resolver.slo.yaml").write_text(
            yaml.safe_dump(spec, sort_keys=False, width=1000), encoding="utf-8")
        events = simulate()
        database = ensure_database(Path(tmp) / "events.db")
        openmetrics = Path(tmp) / "traffic.om.txt"
        write_openmetrics(events, openmetrics, step=300)
        with PrometheusServer.start(Path(tmp) / "prometheus", openmetrics, binary=prometheus,
                                    promtool=promtool) as server:
            env = {"PROMETHEUS_URL": server.url, "SLO_EVENTS_DB": str(database)}
            for stage in STAGES:
                session = run_pytest(directory, ["-q", f"--slo-stage={stage}",
                                                 f"--slo-at={AT_UNIX:.0f}"], env=env)
                rows.append((stage, session))
    print(f"bench_real_server: {SPEC.relative_to(ROOT)} x {len(rows)} stages x "
          f"{args.regions} regions (matrix); {version} and SQLite, on loopback")
    print(f"  machine: {machine()}")
    print("  stage     objectives  queries  run loop  queries/s  verdicts")
    total_queries, total_seconds = 0, 0.0
    for stage, session in rows:
        queries, seconds = int(session.probe["queries"]), session.loop_seconds
        total_queries += queries
        total_seconds += seconds
        outcomes = ", ".join(f"{n} {word}" for word, n in sorted(session.probe["outcomes"].items()))
        print(f"  {stage:9} {session.items('slo'):10}  {queries:7}  {seconds:6.2f} s  "
              f"{queries / seconds:9.0f}  {outcomes}")
    print(f"  {'all':9} {sum(s.items('slo') for _, s in rows):10}  {total_queries:7}  "
          f"{total_seconds:6.2f} s  {total_queries / total_seconds:9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
