"""``/openapi.json`` is complete enough for importers (Postman, code generators)."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import LiveGateway
from tests.processes import REPO

METHODS = ("get", "post", "put", "patch", "delete")


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def error_model(response: dict[str, Any]) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] or None


def test_every_operation_declares_its_answers_and_error_bodies(live_gateway: LiveGateway) -> None:
    doc = live_gateway.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    ops = operations(doc)
    assert len(ops) >= 12
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        responses = op["responses"]
        expected_model = "OpenAIErrorBody" if path.startswith("/v1/videos") else "ErrorBody"
        success = [code for code in responses if code.startswith(("2", "3"))]
        assert success, f"{where}: no success response"
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert error_model(response) == expected_model, f"{where} {code}: {response}"
        if op.get("security"):
            assert {"401", "403", "429"} <= set(responses), f"{where}: auth errors missing"
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in responses, f"{where}: 422 missing"


def test_the_openai_facade_documents_both_create_bodies(live_gateway: LiveGateway) -> None:
    doc = live_gateway.client.get("/openapi.json").json()
    create = doc["paths"]["/v1/videos"]["post"]
    content = create["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["properties"]["input_reference"] == {
        "type": "string",
        "format": "binary",
        "description": "An image: the first frame (image-to-video).",
    }
    assert "application/json" in content
    assert create["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OpenAIVideo"
    )


def test_the_api_reference_documents_every_operation(live_gateway: LiveGateway) -> None:
    """docs/api.md names each operation of /openapi.json (path parameters by any name)."""
    doc = live_gateway.client.get("/openapi.json").json()
    reference = re.sub(r"\{[^}]*\}", "{}", (REPO / "docs" / "api.md").read_text())
    missing = []
    for path, method, _ in operations(doc):
        spelled = re.escape(f"{method.upper()} {re.sub(r'{[^}]*}', '{}', path)}")
        if not re.search(spelled + r"(?=[`?\s])", reference):
            missing.append(f"{method.upper()} {path}")
    assert missing == []
