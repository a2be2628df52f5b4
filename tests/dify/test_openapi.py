"""``GET /dify/openapi.json``: the document Dify's custom-tool importer reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.routes import dify
from app.api.schemas import VideoCreate
from tests.conftest import make_settings

TOOL_TYPES = {"string", "integer", "number", "boolean"}  # what a Dify tool parameter can be


def _document(tmp_path: Path, public_base_url: str) -> dict[str, Any]:
    app = FastAPI()
    app.state.settings = make_settings(tmp_path, {"server": {"public_base_url": public_base_url}})
    app.include_router(dify.router)
    with TestClient(app) as client:
        response = client.get("/dify/openapi.json")  # no token: Dify fetches it anonymously
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_document_names_the_public_server_and_bearer_auth(tmp_path: Path) -> None:
    document = _document(tmp_path, "https://video.example.com/")

    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "https://video.example.com"}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert document["security"] == [{"bearerAuth": []}]


def test_every_operation_is_importable_as_a_dify_tool(tmp_path: Path) -> None:
    document = _document(tmp_path, "https://video.example.com")
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]

    ids = [operation["operationId"] for _, _, operation in operations]
    assert sorted(ids) == ["createVideoTask", "generateVideo", "getVideoTask"]
    for path, method, operation in operations:
        assert operation["summary"] and operation["description"], (path, method)
        for parameter in operation.get("parameters", []):
            assert parameter["schema"]["type"] in TOOL_TYPES, parameter
        if "requestBody" in operation:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema["required"] == ["prompt"]
            for name, prop in schema["properties"].items():
                assert name in VideoCreate.model_fields, name
                assert prop["type"] in TOOL_TYPES, (name, prop)
                assert prop["description"], name


def test_the_sync_tool_waits_less_than_difys_tool_timeout(tmp_path: Path) -> None:
    document = _document(tmp_path, "https://video.example.com")
    body = document["paths"]["/generate-video"]["post"]["requestBody"]
    wait = body["content"]["application/json"]["schema"]["properties"]["wait_s"]

    assert wait["default"] <= 50
    ratios = body["content"]["application/json"]["schema"]["properties"]["aspect_ratio"]["enum"]
    assert {"16:9", "9:16", "1:1"} <= set(ratios)
