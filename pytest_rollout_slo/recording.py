"""pytest glue for ``--slo-record`` and ``--slo-replay`` (the mechanism is in ``replay.py``).

Under pytest-xdist every worker records its own answers into ``PATH.<worker id>``, and the
controller merges those parts into ``PATH`` once the workers are done.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rollout_slo.backends.base import BackendType
from pytest_rollout_slo.backends.redact import Redactor
from pytest_rollout_slo.backends.replay import (
    Recorder,
    Recording,
    RecordingError,
    ReplayEnviron,
    merge,
    write_json_atomic,
)

RECORDER = pytest.StashKey[tuple[Recorder, Path]]()


def _path(config: pytest.Config, text: str) -> Path:
    return config.invocation_params.dir / text


def replay_at(config: pytest.Config, stage: str) -> tuple[Recording | None, float | None]:
    """The recording to replay, if any, and its evaluation time."""
    text = config.getoption("slo_replay")
    if not text:
        return None, None
    if config.getoption("slo_record"):
        raise pytest.UsageError("--slo-record and --slo-replay exclude each other")
    try:
        recording = Recording(_path(config, text))
    except RecordingError as exc:
        raise pytest.UsageError(str(exc)) from None
    if recording.stage != stage:
        raise pytest.UsageError(f"the recording {text} is of stage {recording.stage!r}, not "
                                f"{stage!r}; replay it with --slo-stage={recording.stage}")
    return recording, recording.at


def wrap_types(config: pytest.Config, stage: str, at: float, recording: Recording | None,
               types: dict[str, BackendType]) -> tuple[dict[str, BackendType],
                                                       ReplayEnviron | None]:
    """The backend types as the run uses them, and the environment to resolve settings in."""
    if recording is not None:
        replayed = {n: recording.wrap(t, config.rootpath, at) for n, t in types.items()}
        return replayed, ReplayEnviron()
    text = config.getoption("slo_record")
    if not text:
        return types, None
    recorder = Recorder(stage, at, config.rootpath)
    path = _path(config, text)
    config.stash[RECORDER] = (recorder, path)
    if not hasattr(config, "workerinput"):
        # Parts an earlier run left behind must not be merged into this recording.
        for part in path.parent.glob(f"{path.name}.gw*"):
            part.unlink()
    return {n: recorder.wrap(t) for n, t in types.items()}, None


def finish(config: pytest.Config, redact: Redactor | None = None) -> None:
    """Write the recording: a part on an xdist worker, the merged whole elsewhere; with the
    secrets ``redact`` knows masked (each worker masks its own part)."""
    found = config.stash.get(RECORDER, None)
    if found is None:
        return
    recorder, path = found
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        recorder.write(path.with_name(f"{path.name}.{workerinput['workerid']}"), redact)
        return
    parts = sorted(path.parent.glob(f"{path.name}.gw*"))
    documents = [recorder.document(redact)]
    for part in parts:
        documents.append(json.loads(part.read_text(encoding="utf-8")))
    write_json_atomic(path, merge(documents))
    for part in parts:
        part.unlink()
