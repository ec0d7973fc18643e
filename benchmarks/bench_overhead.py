"""Overhead: 2,000 objectives on an in-memory backend against 2,000 trivial pytest tests.

    python benchmarks/bench_overhead.py [--items 2000]

Both kinds are collected and run in the same pytest session: one spec file with 2,000
objectives (``memory_backend.py``, registered through ``pytest_slo_backend_types``) and one
test module with a test parametrized 2,000 times. ``probe.py`` attributes time and memory to
each kind: collecting its file, and for a full run also each item's runtest protocol (plus,
for the objectives, planning their queries before the first item, and the session's end,
which prints their summary table). The rest of collection is the same work for every item
and is shared out per item. Four sessions: ``--co`` and a full run, each once timed and once
under tracemalloc.

Peak memory per item is what the kind's regions left allocated plus the largest transient
peak inside one of them, over the number of items, plus the item's share of what the rest
of collection left allocated. Target: objectives cost at most 1.5x
a plain test per item, in time and in peak memory, for ``--co`` and for a full run. Exit
status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _support import Session, machine, met, prepare, run_pytest, verdict

TARGET = 1.5
AT = 1_700_000_000

PLAIN = """\
import pytest


@pytest.mark.parametrize("n", range({items}))
def test_plain(n):
    assert n >= 0
"""


def spec(items: int) -> str:
    lines = ["version: 1", "service: overhead", "backends:", "  mem: {type: memory}",
             "stages:", "  bench: {}", "objectives:"]
    for n in range(items):
        lines += [f"  - name: objective_{n:04d}", f"    query: value 0.5 q{n}", "    max: 1"]
    return "\n".join(lines) + "\n"


def gc_share(session: Session, phase: str, kind: str) -> float:
    """Seconds of collector pauses in ``phase`` charged to ``kind``.

    In proportion to the GC-tracked objects each kind's regions left alive (the heap a
    collection walks), the collection's shared work split per item; the session's end is
    the objectives' alone, so its pauses are theirs.
    """
    paused = float(session.probe["gc_seconds"][phase])
    if phase == "finish":
        return paused if kind == "slo" else 0.0
    everyone = session.items("slo") + session.items("plain")
    shared = max(0.0, session.tally(phase, "shared")["objects"])

    def weight(name: str) -> float:
        return (max(0.0, session.tally(phase, name)["objects"])
                + shared * session.items(name) / everyone)

    total = weight("slo") + weight("plain")
    return paused * weight(kind) / total if total else paused * session.items(kind) / everyone


def per_item(session: Session, kind: str, full_run: bool, memory: bool) -> float:
    """What one item of ``kind`` costs: its own regions plus its share of the common work."""
    items = session.items(kind)
    everyone = session.items("slo") + session.items("plain")
    phases = ["collect", "run", "finish"] if full_run else ["collect"]
    tallies = [session.tally(phase, kind) for phase in phases]
    shared = session.tally("collect", "shared")
    if memory:
        own = sum(t["retained"] for t in tallies) + max(t["overshoot"] for t in tallies)
        return own / items + shared["retained"] / everyone
    paused = sum(gc_share(session, phase, kind) for phase in phases)
    return (sum(t["seconds"] for t in tallies) + paused) / items + shared["seconds"] / everyone


def as_it_fell(session: Session, kind: str, full_run: bool) -> float:
    """Time per item with each collector pause charged to the region it fell in."""
    items = session.items(kind)
    everyone = session.items("slo") + session.items("plain")
    phases = ["collect", "run", "finish"] if full_run else ["collect"]
    own = sum(t["seconds"] + t["paused"] for t in (session.tally(p, kind) for p in phases))
    shared = session.tally("collect", "shared")
    return own / items + (shared["seconds"] + shared["paused"]) / everyone


def pauses(session: Session, full_run: bool) -> str:
    phases = ["collect", "run", "finish"] if full_run else ["collect"]
    total = sum(float(session.probe["gc_seconds"][p]) for p in phases)
    slo = sum(gc_share(session, p, "slo") for p in phases)
    return (f"collector pauses {total * 1e3:.0f} ms, {slo / total:.0%} charged to the "
            f"objectives" if total else "no collector pause")


def measure(directory: Path, args: list[str], items: int, full_run: bool,
            memory: bool) -> tuple[float, float, str]:
    """One session: per-item cost of an objective and of a plain test, and a note on pauses."""
    session = run_pytest(directory, args, memory=memory, plugins=["memory_backend"])
    if session.returncode != 0 or session.items("slo") != items \
            or session.items("plain") != items:
        raise SystemExit(f"expected {items} items of each kind to pass:\n"
                         f"{session.output[-3000:]}")
    slo, plain = (per_item(session, kind, full_run, memory) for kind in ("slo", "plain"))
    if memory:
        return slo, plain, ""
    fell = as_it_fell(session, "slo", full_run) / as_it_fell(session, "plain", full_run)
    return slo, plain, (f"{pauses(session, full_run)}; charged where each fell instead: "
                        f"{fell:.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed sessions of each kind; the median one is shown")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        directory = prepare(Path(tmp))
        (directory / "overhead.slo.yaml").write_text(spec(args.items), encoding="utf-8")
        (directory / "test_plain.py").write_text(PLAIN.format(items=args.items),
                                                 encoding="utf-8")
        # Plain tests are collected beside a gated stage only when asked (--slo-with-tests).
        common = ["-q", "--slo-stage=bench", f"--slo-at={AT}", "--slo-with-tests"]
        for label, extra, full_run in (("--co", ["--co"], False), ("full run", [], True)):
            # Timings on a shared 2-core machine wander by 10-20 % from one session to the
            # next; the session with the median ratio is shown, with the others' ratios.
            # Peak memory is the same in every session, so it is measured once.
            timed = sorted((measure(directory, [*common, *extra], args.items, full_run, False)
                            for _ in range(max(1, args.repeat))),
                           key=lambda m: m[0] / m[1])
            slo, plain, note = timed[len(timed) // 2]
            if len(timed) > 1:
                ratios = ", ".join(f"{m[0] / m[1]:.2f}x" for m in timed)
                note = f"{note})\n{'':33}(ratios of the {len(timed)} timed sessions: {ratios}"
            rows.append((label, "time", slo, plain, note))
            rows.append((label, "peak memory",
                         *measure(directory, [*common, *extra], args.items, full_run, True)))
    print(f"bench_overhead: {args.items} objectives (in-memory backend) vs {args.items} "
          "parametrized tests, same session")
    print(f"  machine: {machine()}")
    missed = False
    for label, kind, slo, plain, note in rows:
        shown = ((f"{slo * 1e6:7.0f} us vs {plain * 1e6:5.0f} us") if kind == "time"
                 else f"{slo / 1024:7.1f} KiB vs {plain / 1024:5.1f} KiB")
        ratio = slo / plain
        missed = missed or not met(ratio, TARGET)
        print(f"  {label:8} {kind:11} per item: {shown}: {verdict(ratio, TARGET)}")
        if note:
            print(f"{'':33}({note})")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
