"""The GitLab CI example: GitLab would accept it, and it fits the specs it gates.

GitLab rejects a whole pipeline for one wrong key, and creates none; so the example is
checked against GitLab's own CI schema (``check-jsonschema --builtin-schema vendor.gitlab-ci``)
and against the rules that schema cannot see: every job's stage is listed in ``stages:``, no
job holds both ``when:`` and ``rules:`` once ``extends:`` is merged, and the include-able file
sets no global key. The specs of the example are collected for every stage.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gitlab-ci"
PIPELINE = EXAMPLE / ".gitlab-ci.yml"
TEMPLATE = EXAMPLE / "slo-gate.gitlab-ci.yml"
SPECS = (EXAMPLE / "development-flags.slo.yaml", EXAMPLE / "project-flags.slo.yaml")
PLAN_STAGES = ["internal", "beta-10", "beta-25", "beta-50", "ga"]
GLOBAL_KEYS = {"default", "include", "stages", "variables", "workflow", "image", "services",
               "cache", "before_script", "after_script"}
DEFAULT_STAGES = [".pre", "build", "test", "deploy", ".post"]


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.gitlab-ci", *map(str, files)],
                          capture_output=True, text=True, check=False, timeout=120)


def jobs(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every job of ``pipeline`` and of its local includes, with ``extends:`` merged as
    GitLab merges it (mappings deeply, everything else replaced)."""
    defined = dict(pipeline)
    for entry in pipeline.get("include", []):
        defined.update(load(EXAMPLE.parent.parent / entry["local"]))
    found = {name: body for name, body in defined.items()
             if name not in GLOBAL_KEYS and isinstance(body, dict)}

    def merged(name: str) -> dict[str, Any]:
        body = found[name]
        parents = body.get("extends", [])
        result: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            result = _deep_merge(result, merged(parent))
        return _deep_merge(result, {k: v for k, v in body.items() if k != "extends"})

    return {name: merged(name) for name in found}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def test_gitlab_schema_accepts_the_pipeline_and_the_include() -> None:
    result = check_jsonschema(PIPELINE, TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_schema_check_can_fail(tmp_path: Path) -> None:
    # What the old example did: resource_group under default: is not allowed there.
    bad = tmp_path / ".gitlab-ci.yml"
    bad.write_text("default:\n  resource_group: x\njob:\n  script: [echo]\n", encoding="utf-8")
    result = check_jsonschema(bad)
    assert result.returncode == 1 and "resource_group" in result.stdout + result.stderr


def test_every_job_stage_is_listed_and_the_stages_are_the_plans() -> None:
    pipeline = load(PIPELINE)
    stages = pipeline.get("stages", DEFAULT_STAGES)
    assert stages == PLAN_STAGES
    visible = {name: body for name, body in jobs(pipeline).items() if not name.startswith(".")}
    assert visible, "no job"
    unlisted = {name: body.get("stage", "test") for name, body in visible.items()
                if body.get("stage", "test") not in stages}
    assert unlisted == {}
    assert sorted(name for name in visible if name.startswith("slo:")) == \
        sorted(f"slo:{stage}" for stage in PLAN_STAGES)


def test_no_job_has_both_when_and_rules() -> None:
    # GitLab: "config key may not be used with `rules`: when"; the schema lets it through.
    both = [name for name, body in jobs(load(PIPELINE)).items()
            if "when" in body and "rules" in body]
    assert both == []


def test_include_variant_sets_no_global_key_and_brings_hidden_jobs() -> None:
    template = load(TEMPLATE)
    assert set(template) & GLOBAL_KEYS == set()
    assert all(name.startswith(".") for name in template)
    assert {".slo-gate", ".slo-rollback"} <= set(template)


def test_jobs_install_from_the_repository_with_colours_and_expose_the_summary() -> None:
    merged = jobs(load(PIPELINE))
    gate, rollback = merged["slo:beta-10"], merged["rollback:beta-10"]
    assert "git+https://" in gate["variables"]["SLO_PLUGIN"]
    assert not any("pip install pytest-rollout-slo" in line for line in gate["before_script"])
    for job in (gate, rollback):
        script = " ".join(job["script"])
        assert "--color=yes" in script and "--slo-mr-note" in script
        assert job["artifacts"]["when"] == "always" and job["artifacts"]["expose_as"]
        assert job["environment"] == {"name": "production", "action": "verify"}
    assert "--slo-check-flag" in " ".join(gate["script"])
    assert "--slo-rollback" in " ".join(rollback["script"])
    assert rollback["needs"] == ["slo:beta-10"]
    assert rollback["rules"] == [{"if": '$SLO_STAGE == "beta-10"', "when": "on_failure"}]


def test_spec_stages_are_the_pipelines_and_the_variants_share_their_objectives() -> None:
    development, project = (load(spec) for spec in SPECS)
    assert list(development["stages"]) == list(project["stages"]) == PLAN_STAGES
    assert development["objectives"] == project["objectives"]
    assert {s["rollout"].get("api") for s in development["stages"].values()} == {"features"}
    assert {s["rollout"].get("api", "project") for s in project["stages"].values()} == \
        {"project"}


@pytest.mark.parametrize("stage", PLAN_STAGES)
def test_example_specs_collect_for_every_stage(pytester: pytest.Pytester, stage: str) -> None:
    for spec in SPECS:
        shutil.copy(spec, pytester.path / spec.name)
    result = pytester.runpytest("-p", "no:cacheprovider", "--co", f"--slo-stage={stage}",
                                *(spec.name for spec in SPECS))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines([f"*error_rate[[]{stage}[]]*"])
