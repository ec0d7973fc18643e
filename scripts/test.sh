#!/usr/bin/env bash
# The project's whole test run, as the README and .ci/run give it: install the Python test
# dependencies and the Prometheus and VictoriaMetrics servers when they are missing, then
# lint, type-check and run the suite (which starts its own servers on loopback), then the
# end-to-end tests again under the other supported pytest and Python versions (noxfile.py).
# SLO_SKIP_NOX=1 leaves out the last step (a quick local run); CI never sets it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything the tests need is installed below, so a server or tool still missing is a
# failure, never a skip (tests/conftest.py: missing()).
export CI="${CI:-true}"

python -m pip install --quiet --disable-pip-version-check -e '.[test]'
bash scripts/ensure-servers.sh

echo "== ruff"
python -m ruff check .
echo "== mypy --strict"
python -m mypy
python -m mypy examples/quickstart/conftest.py
# The dashboard module uses grafana-foundation-sdk, which needs Python 3.11 (see pyproject.toml).
python -m mypy --config-file= --strict --python-version 3.11 pytest_rollout_slo/export/dashboard.py
echo "== import-linter (the data path runs one way, no cycles)"
lint-imports
echo "== pytest"
python -m pytest "$@"
if [ "${SLO_SKIP_NOX:-}" != "1" ]; then
    echo "== nox: the end-to-end tests under the lowest, newest 8.x and 9.x pytest, every Python"
    python -m nox
fi
