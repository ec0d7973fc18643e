"""The scripts a user would write instead of the plugin, for ``bench_vs_script.py``.

    python benchmarks/vs_script_client.py PLAN.json URL plain|dedup|floor

``PLAN.json`` lists every item's resolved queries (what the plugin planned: ``kind``,
``query`` and times, the same form as the answers of a ``--slo-record`` recording) and its
bounds. ``plain`` is the script: one ``requests.Session``, a ``ThreadPoolExecutor`` of 8, every
query of every item sent, the JSON answer read, the value checked against the bounds (a
ratio's parts divided). ``dedup`` is the same script sending each distinct query once.
``floor`` is the server's floor as a client sees it: 8 threads on ``http.client`` keep-alive
connections, each distinct query sent once with a body encoded beforehand, the answer read
and not parsed (there is no ``wrk`` here). Prints one JSON line: the checks' tally. Only the
standard library and requests, as such a script would be.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

THREADS = 8


def _form(query: Sequence[Any]) -> tuple[str, dict[str, str]]:
    kind, text, times = query
    if kind == "instant":
        return "/api/v1/query", {"query": text, "time": f"{times[0]:.3f}"}
    start, end, step = times
    return "/api/v1/query_range", {"query": text, "start": f"{start:.3f}",
                                   "end": f"{end:.3f}", "step": f"{step:g}"}


def _values(answer: dict[str, Any]) -> list[float]:
    if answer.get("status") != "success":
        raise ValueError(answer.get("error", "no answer"))
    result = answer["data"]["result"]
    if answer["data"]["resultType"] == "matrix":
        return [float(v) for series in result[:1] for _, v in series["values"]]
    return [float(series["value"][1]) for series in result[:1]]


def _judge(item: dict[str, Any], answers: dict[str, list[float]]) -> str:
    parts = {name: answers[key] for name, key in item["parts"]}
    if "numerator" in parts and "denominator" in parts:
        num, den = parts["numerator"], parts["denominator"]
        values = [n / d for n, d in zip(num, den, strict=False) if d]
    else:
        values = next(iter(parts.values()), [])
    if not values:
        return "no_data"
    low, high = item["min"], item["max"]
    ok = all((low is None or v >= low) and (high is None or v <= high) for v in values)
    return "pass" if ok else "fail"


def run_requests(plan: dict[str, Any], url: str, dedup: bool) -> dict[str, int]:
    session = requests.Session()
    queries: dict[str, list[Any]] = plan["queries"]
    sent = list(queries) if dedup else [key for item in plan["items"]
                                        for _, key in item["parts"]]

    def ask(key: str) -> list[float]:
        path, form = _form(queries[key])
        response = session.post(url + path, data=form, timeout=(5, 30))
        return _values(response.json())

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(ask, sent))
    answers = dict(zip(sent, results, strict=True))
    tally: dict[str, int] = {}
    for item in plan["items"]:
        verdict = _judge(item, answers)
        tally[verdict] = tally.get(verdict, 0) + 1
    return tally


def run_floor(plan: dict[str, Any], url: str) -> dict[str, int]:
    parts = urlsplit(url)
    bodies = []
    for query in plan["queries"].values():
        path, form = _form(query)
        bodies.append((path, urlencode(form).encode()))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    lock = threading.Lock()
    todo = iter(bodies)
    read = [0]

    def worker() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=30)
        while True:
            with lock:
                job = next(todo, None)
            if job is None:
                break
            connection.request("POST", job[0], body=job[1], headers=headers)
            size = len(connection.getresponse().read())
            with lock:
                read[0] += size
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"answers": len(bodies), "bytes": read[0]}


def main(argv: Sequence[str]) -> int:
    plan_path, url, mode = argv
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    tally = run_floor(plan, url) if mode == "floor" else run_requests(plan, url, mode == "dedup")
    print(json.dumps(tally, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
