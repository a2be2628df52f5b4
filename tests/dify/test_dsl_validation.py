"""Every shipped Dify DSL file passes Dify's own engine (graphon) and the known import traps.

Validation loads each file with ``graphon.dsl.inspect``, validates every node's ``data`` with
the NodeData class Dify uses, builds the graph with ``Graph.init`` and checks that every
reference points upstream. The trap tests prove the validator is not a rubber stamp: each
breaks a copy of ``dify_workflow.yml`` the way a hand edit would and expects the finding.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dify import engine


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One validator run (one engine start-up) for the shipped files and the broken copies."""
    original = engine.MAIN.read_text(encoding="utf-8")
    folder = tmp_path_factory.mktemp("traps")
    for name, (breakage, _) in TRAPS.items():
        broken = breakage(original)
        assert broken != original, f"trap {name} did not change the file"
        (folder / f"{name}.yml").write_text(broken, encoding="utf-8")
    return engine.validate(*engine.ALL_FILES, *(folder / f"{name}.yml" for name in TRAPS))


def test_every_dsl_file_passes_graphon_validation(report: dict[str, dict[str, Any]]) -> None:
    shipped = {str(path): report[str(path)] for path in engine.ALL_FILES}

    failures = {path: item["problems"] for path, item in shipped.items() if not item["ok"]}
    assert not failures, failures


@pytest.mark.parametrize("path", engine.ALL_FILES, ids=lambda path: path.name)
def test_file_ships_version_string_quoted_ratios_and_blank_secret(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))

    assert doc["version"] == "0.6.0"
    env = {var["name"]: var for var in doc["workflow"]["environment_variables"]}
    assert set(env) == {"GATEWAY_BASE_URL", "GATEWAY_TOKEN"}
    assert env["GATEWAY_TOKEN"]["value_type"] == "secret"
    assert env["GATEWAY_TOKEN"]["value"] == ""
    start = next(n for n in doc["workflow"]["graph"]["nodes"] if n["data"]["type"] == "start")
    ratio = next(v for v in start["data"]["variables"] if v["variable"] == "aspect_ratio")
    assert ratio["options"] == ["16:9", "9:16", "1:1"]


def test_gateway_expands_variant_needs_no_model_plugin() -> None:
    doc = yaml.safe_load(engine.GATEWAY_EXPANDS.read_text(encoding="utf-8"))

    assert doc["dependencies"] == []
    assert all(n["data"]["type"] != "llm" for n in doc["workflow"]["graph"]["nodes"])
    assert '"expand_prompt": True' in _node(doc, "build_request")["data"]["code"]


def _node(doc: dict[str, Any], node_id: str) -> dict[str, Any]:
    node: dict[str, Any] = next(n for n in doc["workflow"]["graph"]["nodes"] if n["id"] == node_id)
    return node


TRAPS: dict[str, tuple[Callable[[str], str], str]] = {
    "hyphenated_id": (
        lambda text: text.replace("build_request", "build-request"),
        "id must match",
    ),
    "unquoted_ratio": (
        lambda text: text.replace('- "1:1"', "- 1:1"),
        "options must be quoted strings",
    ),
    "retry_enabled_misspelt": (
        lambda text: text.replace("retry_enabled: true", "enabled: true"),
        "retry_config",
    ),
    "llm_text_templated_into_json": (
        lambda text: text.replace(
            "value: '{{#build_request.payload#}}'",
            'value: \'{"prompt": "{{#expand_llm.text#}}"}\'',
        ),
        "built by a Code node",
    ),
    "version_as_float": (
        lambda text: text.replace('version: "0.6.0"', "version: 0.6"),
        "version must be the string",
    ),
    "reference_to_a_later_node": (
        lambda text: text.replace(
            "value_selector: [expand_llm, text]", "value_selector: [parse_response, message]"
        ),
        "is not upstream",
    ),
    "token_not_secret": (
        lambda text: text.replace("value_type: secret", "value_type: string"),
        "secret env variable",
    ),
}


@pytest.mark.parametrize("trap", list(TRAPS))
def test_validator_catches_a_known_dsl_trap(trap: str, report: dict[str, dict[str, Any]]) -> None:
    item = next(item for path, item in report.items() if Path(path).name == f"{trap}.yml")
    finding = TRAPS[trap][1]

    assert not item["ok"], f"{trap}: not caught"
    assert any(finding in problem for problem in item["problems"]), item["problems"]
