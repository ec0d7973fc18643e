"""The spec reference's complete example is a spec the loader accepts, with the items the
page says it gives."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_rollout_slo.backends.registry import BUILTIN_TYPES
from pytest_rollout_slo.spec.load import load_spec

REFERENCE = Path(__file__).parent.parent / "docs" / "spec.md"


def complete_example() -> str:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split("## A complete example", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None, "docs/spec.md lost its complete example"
    return match.group(1)


def test_the_complete_example_loads_with_the_items_it_lists(tmp_path: Path) -> None:
    path = tmp_path / "example.slo.yaml"
    path.write_text(complete_example(), encoding="utf-8")
    spec = load_spec(path, {t.name: t for t in BUILTIN_TYPES})
    titles = {spec.resolve(o, "beta", c).title for o in spec.objectives if "beta" in o.bounds
              for c in o.combinations()}
    assert titles == {"error_rate[beta]", "latency_p95[beta]", "error_rate_vs_control[beta]",
                      "error_rate_held[beta]", "checkout_completion[beta-region=eu]",
                      "checkout_completion[beta-region=us]", "page_load_p99[beta]"}
    assert "error_budget" in {o.name for o in spec.objectives if "ga" in o.bounds}


def test_the_readme_read_only_role_is_the_one_the_tests_create() -> None:
    from pgserver import GATE, READ_ONLY_ROLE

    readme = (REFERENCE.parent.parent / "README.md").read_text(encoding="utf-8")
    recipe = readme.split("The read-only role, as the integration tests create it:", 1)[1]
    block = re.search(r"```sql\n(.*?)```", recipe, re.DOTALL)
    assert block is not None, "README lost its PostgreSQL read-only role recipe"
    assert block.group(1).splitlines() == [s.replace(GATE[1], "change-me")
                                           for s in READ_ONLY_ROLE]
    role_sql = (REFERENCE.parent.parent / "examples" / "postgres" / "role.sql").read_text(
        encoding="utf-8")
    assert [line.removesuffix(";") for line in role_sql.splitlines()
            if not line.startswith("--")] == block.group(1).splitlines()
