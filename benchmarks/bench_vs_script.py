"""The plugin side by side with the script a user would write, on a real Prometheus.

    python benchmarks/bench_vs_script.py [--rounds 5] [--sizes 100,400,2000]

Starts Prometheus as the test suite does (``tests/servers.py``: promtool backfill of the
quickstart simulator's traffic) and gates ``slo_specs/conflict_resolver.yaml`` at
``--slo-stage=beta`` with a ``matrix`` of regions, sized to about 100, 400 and 2,000
objectives. Only its Prometheus objectives are kept, so that both sides do the same work. The
data has no region label: every other objective's queries carry a comment naming the region
(``# region r07``), so they are distinct per region, and the others are the same query in
every region, as an objective that does not select by region is.

Contenders, each one fresh process per run, interleaved over the rounds (the order turns
every round), timed from start to exit:

- ``plugin``: pytest with only this plugin;
- ``script``: ``vs_script_client.py plain``, requests and a ThreadPoolExecutor of 8 over
  every query the plugin planned for every item (the plugin's own plan; its ``--slo-record``
  recording is checked to hold exactly the distinct ones);
- ``dedup-script``: the same script sending each distinct query once;
- ``floor``: a raw ``http.client`` client, 8 keep-alive connections, each distinct query
  once, answers not parsed (there is no ``wrk`` here).

Requests are counted by Prometheus itself (``prometheus_http_requests_total`` of the API
handlers, read before and after each run). Prints the medians, then, for the largest size, the
line ``vs-script: plugin/script X.XXx, plugin/dedup-script Y.YYx, plugin/floor Z.ZZx,
requests plugin A script B distinct C``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from _support import BENCHMARKS, ROOT, machine, prepare, prometheus_tools

sys.path.insert(0, str(ROOT / "tests"))
sys.path.append(str(ROOT / "examples" / "quickstart"))

from servers import PrometheusServer
from simulate import AT_UNIX, simulate, write_openmetrics

from pytest_rollout_slo.backends.base import Query
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.plan.needs import Measurement
from pytest_rollout_slo.spec.load import load_spec

SPEC = ROOT / "slo_specs" / "conflict_resolver.yaml"
STAGE = "beta"
QUERY_KEYS = ("query", "numerator", "denominator")
CONTENDERS = ("plugin", "script", "dedup-script", "floor")
# Targets of issue 16, at the largest size and at about 400 objectives.
TARGETS = {"script": 1.0, "dedup-script": 1.2}
TARGET_400 = 1.2
_COUNTER = re.compile(r'^prometheus_http_requests_total\{[^}]*handler="(/api/[^"]*)"[^}]*\} (\S+)$',
                      re.M)


def prometheus_only(spec: dict[str, Any], regions: int) -> dict[str, Any]:
    """The spec's Prometheus objectives with a matrix of regions; every other objective's
    queries made distinct per region by a comment."""
    default = next(iter(spec["backends"]))
    kept = [o for o in spec["objectives"]
            if spec["backends"][o.get("backend", default)]["type"] == "prometheus"]
    for index, objective in enumerate(kept):
        if index % 2:
            continue
        for holder in (objective, objective.get("ratio") or {}):
            for key in QUERY_KEYS:
                if key in holder:
                    holder[key] = f"{holder[key]}\n# region ${{region}}"
        quantile = objective.get("histogram_quantile")
        if quantile is not None:  # no comment inside a selector: a matcher every series meets
            quantile["selector"] += ', region!="${region}-none"'
    spec["backends"] = {k: v for k, v in spec["backends"].items() if v["type"] == "prometheus"}
    spec["objectives"] = kept
    spec["matrix"] = {"region": [f"r{n:02d}" for n in range(1, regions + 1)]}
    return spec


def plan(path: Path) -> dict[str, Any]:
    """Every item's queries as the plugin plans them, and the distinct ones by key."""
    spec = load_spec(path, {"prometheus": PROMETHEUS})
    queries: dict[str, list[Any]] = {}
    items = []
    for objective in spec.objectives:
        if STAGE not in objective.bounds:
            continue
        for combination in objective.combinations():
            resolved = spec.resolve(objective, STAGE, combination)
            parts = []
            for need in Measurement(resolved, AT_UNIX, ranged=True).needs():
                query = need.query
                entry = (["instant", query.text, [query.at]] if isinstance(query, Query) else
                         ["range", query.text, [query.start, query.end, query.step]])
                key = json.dumps(entry)
                queries[key] = entry
                parts.append([need.name.rsplit(":", 1)[-1], key])
            items.append({"name": resolved.title, "min": resolved.bounds.min,
                          "max": resolved.bounds.max, "parts": parts})
    return {"items": items, "queries": queries}


def api_requests(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return int(sum(float(value) for _, value in _COUNTER.findall(text)))


def run(command: Sequence[str], cwd: Path, env: dict[str, str], url: str) -> tuple[float, int]:
    before = api_requests(url)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                         f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds, api_requests(url) - before


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="100,400,2000")
    args = parser.parse_args(argv)
    prometheus, promtool, version = prometheus_tools()
    source = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    results: dict[int, dict[str, list[tuple[float, int]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-vs-") as tmp:
        root = Path(tmp)
        per_region = len(plan_of(source, 1, prepare(root / "one"))["items"])
        sizes = [max(1, round(int(s) / per_region)) for s in args.sizes.split(",")]
        openmetrics = root / "traffic.om.txt"
        write_openmetrics(simulate(), openmetrics, step=300)
        setups = {}
        with PrometheusServer.start(root / "prometheus", openmetrics, binary=prometheus,
                                    promtool=promtool) as server:
            base_env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                        "PROMETHEUS_URL": server.url}
            for regions in sizes:
                directory = prepare(root / f"r{regions}")
                planned = plan_of(source, regions, directory)
                plan_file = directory / "plan.json"
                plan_file.write_text(json.dumps(planned), encoding="utf-8")
                pytest_args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                               "-p", "pytest_rollout_slo.plugin", "-q", f"--slo-stage={STAGE}",
                               f"--slo-at={AT_UNIX:.0f}"]
                # The plugin's own recording holds each distinct request once: the plan's.
                run([*pytest_args, "--slo-record=rec.json"], directory, base_env, server.url)
                recorded = json.loads((directory / "rec.json").read_text(encoding="utf-8"))
                if len(recorded["answers"]) != len(planned["queries"]):
                    raise SystemExit(f"the recording holds {len(recorded['answers'])} answers, "
                                     f"the plan {len(planned['queries'])} distinct queries")
                client = [sys.executable, str(BENCHMARKS / "vs_script_client.py"),
                          str(plan_file), server.url]
                setups[regions] = (directory, planned, {
                    "plugin": pytest_args, "script": [*client, "plain"],
                    "dedup-script": [*client, "dedup"], "floor": [*client, "floor"]})
                results[regions] = {name: [] for name in CONTENDERS}
            for number in range(args.rounds):
                for regions in sizes:
                    directory, _, commands = setups[regions]
                    turn = number % len(CONTENDERS)
                    for name in CONTENDERS[turn:] + CONTENDERS[:turn]:
                        results[regions][name].append(
                            run(commands[name], directory, base_env, server.url))
    print(f"bench_vs_script: {SPEC.relative_to(ROOT)} (Prometheus objectives) at {STAGE}, "
          f"a matrix of regions; {version}, on loopback; {args.rounds} rounds interleaved, "
          "medians; each contender a fresh process timed from start to exit")
    print(f"  machine: {machine()}")
    print("  objectives  distinct  " + "  ".join(f"{n:>14}" for n in CONTENDERS)
          + "  plugin/script  plugin/dedup  plugin/floor")
    line = ""
    for regions in sizes:
        _, planned, _ = setups[regions]
        medians = {n: statistics.median(s for s, _ in results[regions][n]) for n in CONTENDERS}
        sent = {n: results[regions][n][-1][1] for n in CONTENDERS}
        ratios = {n: medians["plugin"] / medians[n] for n in CONTENDERS}
        cells = "  ".join(f"{medians[n]:6.2f} s {sent[n]:5}r" for n in CONTENDERS)
        print(f"  {len(planned['items']):10}  {len(planned['queries']):8}  {cells}  "
              f"{ratios['script']:12.2f}x  {ratios['dedup-script']:11.2f}x  "
              f"{ratios['floor']:11.2f}x")
        spread = {n: (min(s for s, _ in results[regions][n]),
                      max(s for s, _ in results[regions][n])) for n in CONTENDERS}
        print("  " + " " * 20 + "  ".join(f"{lo:5.2f}-{hi:<5.2f}   " for lo, hi in
                                          spread.values()) + "  (min-max)")
        if abs(len(planned["items"]) - 400) < 200:
            print(f"  at {len(planned['items'])} objectives: plugin/script "
                  f"{ratios['script']:.2f}x (target <= {TARGET_400:g}x: "
                  f"{'met' if round(ratios['script'], 2) <= TARGET_400 else 'MISSED'})")
        line = (f"vs-script: plugin/script {ratios['script']:.2f}x, plugin/dedup-script "
                f"{ratios['dedup-script']:.2f}x, plugin/floor {ratios['floor']:.2f}x, "
                f"requests plugin {sent['plugin']} script {sent['script']} "
                f"distinct {len(planned['queries'])}")
        last = (ratios, sent, len(planned["queries"]))
    ratios, sent, distinct = last
    for name, target in TARGETS.items():
        ok = round(ratios[name], 2) <= target
        print(f"  largest size: plugin/{name} {ratios[name]:.2f}x (target <= {target:g}x: "
              f"{'met' if ok else 'MISSED'})")
    print(f"  largest size: requests plugin {sent['plugin']} = distinct {distinct} + "
          f"{sent['plugin'] - distinct} series lookup(s)")
    print(line)
    return 0


def plan_of(source: dict[str, Any], regions: int, directory: Path) -> dict[str, Any]:
    spec = prometheus_only(json.loads(json.dumps(source)), regions)
    path = directory / "conflict_resolver.slo.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, width=1000), encoding="utf-8")
    return plan(path)


if __name__ == "__main__":
    raise SystemExit(main())
