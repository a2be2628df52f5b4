"""Validate and run Dify DSL files with Dify's own workflow engine, graphon 0.7.0.

This script runs inside the side environment ``.venv-dify`` (Python 3.12, graphon installed
``--no-deps``; see ``tests/dify/requirements.txt``). The gateway's pytest suite calls it as a
subprocess and reads the one JSON object it prints on stdout::

    engine_runner.py validate FILE [FILE ...]
        -> {"files": {FILE: {"ok": bool, "problems": [str, ...]}}}
    engine_runner.py run FILE --inputs JSON --env JSON --fake-llm-text TEXT [--query TEXT]
                         [--tool-credentials JSON] [--plugin-dir DIR]
        -> {"status", "outputs", "answer", "error", "nodes": [...], "loop_rounds": {...},
            "llm_calls": [...]}

What is Dify's and what is ours:

* Dify's: ``graphon.dsl.inspect`` (the import plan), the NodeData models every node is validated
  with, ``Graph.init`` and ``GraphEngine`` (the run), the HTTP Request node (real requests),
  the Code node and its Python runner template (``main(**inputs)`` wrapped exactly as Dify's
  sandbox receives it).
* Tool nodes of our Dify plugin (``integrations/dify-plugin``): graphon's ``ToolNode`` with
  graphon's own plugin adapter (``SlimToolNodeRuntime``: parameter resolution, credentials,
  message conversion), whose transport to the plugin — the daemon Dify would use — is replaced
  by ``tests/dify/plugin_daemon.py``: the real plugin process in its own environment
  (``.venv-plugin``, the dify_plugin SDK) spoken to over the SDK's stdio protocol, as Dify's
  plugin daemon runs a local plugin. The plugin's real tool classes answer.
* Ours: the model runtime (a fake LLM that streams a fixed text), the code sandbox (the same
  program run by a local ``python -I`` subprocess with Dify's 15 s limit), the plugin daemon's
  stdio side (above), the Start-input
  preparation Dify's app layer does before the engine starts (required/default/select/number),
  and the lint rules in ``validate`` that catch what Dify would import silently and break at run
  time (unknown-key typos, hyphenated ids, references that stay literal text, ...).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, overload

import yaml
from graphon.dsl import DslImportPlan, SandboxCodeExecutionError, SlimDslNodeFactory, inspect
from graphon.dsl.code_runtime import _Python3TemplateTransformer
from graphon.dsl.entities import DslCredentials, DslToolCredential
from graphon.dsl.node_factory import (
    _canonical_vendor,
    _find_plugin_id,
    _find_tool_plugin_id,
    _UnsupportedToolFileManager,
)
from graphon.dsl.tool_runtime import (
    SlimToolAction,
    SlimToolNodeRuntime,
    resolve_dsl_tool_credential,
)
from graphon.entities.base_node_data import BaseNodeData
from graphon.entities.graph_config import NodeConfigDict
from graphon.entities.graph_init_params import GraphInitParams
from graphon.enums import BuiltinNodeTypes
from graphon.file.enums import FileType
from graphon.file.models import File
from graphon.graph.graph import Graph
from graphon.graph_engine.command_channels import InMemoryChannel
from graphon.graph_engine.graph_engine import GraphEngine
from graphon.graph_events.graph import (
    GraphRunFailedEvent,
    GraphRunPartialSucceededEvent,
    GraphRunSucceededEvent,
)
from graphon.graph_events.loop import NodeRunLoopNextEvent, NodeRunLoopSucceededEvent
from graphon.graph_events.node import (
    NodeRunExceptionEvent,
    NodeRunFailedEvent,
    NodeRunRetryEvent,
    NodeRunSucceededEvent,
)
from graphon.model_runtime.entities.common_entities import I18nObject
from graphon.model_runtime.entities.llm_entities import (
    LLMMode,
    LLMResult,
    LLMResultChunk,
    LLMResultChunkDelta,
    LLMResultChunkWithStructuredOutput,
    LLMResultWithStructuredOutput,
    LLMUsage,
)
from graphon.model_runtime.entities.message_entities import (
    AssistantPromptMessage,
    PromptMessage,
    PromptMessageTool,
)
from graphon.model_runtime.entities.model_entities import (
    AIModelEntity,
    FetchFrom,
    ModelPropertyKey,
    ModelType,
)
from graphon.nodes.answer.entities import AnswerNodeData
from graphon.nodes.base.node import Node
from graphon.nodes.code.code_node import CodeNode
from graphon.nodes.code.entities import CodeLanguage, CodeNodeData
from graphon.nodes.code.limits import CodeNodeLimits
from graphon.nodes.end.entities import EndNodeData
from graphon.nodes.http_request.entities import HttpRequestNodeData
from graphon.nodes.if_else.entities import IfElseNodeData
from graphon.nodes.llm import LLMNode, LLMNodeData
from graphon.nodes.llm.runtime_protocols import LLMProtocol
from graphon.nodes.loop.entities import LoopEndNodeData, LoopNodeData, LoopStartNodeData
from graphon.nodes.start.entities import StartNodeData
from graphon.nodes.tool.entities import ToolNodeData
from graphon.nodes.tool.exc import ToolRuntimeInvocationError
from graphon.nodes.tool.tool_node import ToolNode
from graphon.nodes.variable_assigner.v2.entities import VariableAssignerNodeData
from graphon.runtime.graph_runtime_state import GraphRuntimeState
from graphon.runtime.variable_pool import VariablePool
from graphon.variables.template_resolution import VARIABLE_PATTERN
from pydantic import BaseModel, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.dify.plugin_daemon import PLUGIN_DIR, PluginInvokeError, PluginProcess

DSL_VERSION = "0.6.0"
CODE_TIMEOUT_S = 15  # dify-sandbox's WORKER_TIMEOUT
NODE_ID = re.compile(r"^[A-Za-z0-9_]+$")
# Anything that looks like a Dify reference; those VARIABLE_PATTERN rejects stay literal text.
REFERENCE_LIKE = re.compile(r"\{\{#([^{}]*?)#\}\}")
RETRY_KEYS = {"retry_enabled", "max_retries", "retry_interval"}

# The NodeData model Dify validates each node type's `data` with.
NODE_DATA_MODELS: dict[str, type[BaseNodeData]] = {
    BuiltinNodeTypes.START: StartNodeData,
    BuiltinNodeTypes.END: EndNodeData,
    BuiltinNodeTypes.ANSWER: AnswerNodeData,
    BuiltinNodeTypes.LLM: LLMNodeData,
    BuiltinNodeTypes.CODE: CodeNodeData,
    BuiltinNodeTypes.HTTP_REQUEST: HttpRequestNodeData,
    BuiltinNodeTypes.IF_ELSE: IfElseNodeData,
    BuiltinNodeTypes.LOOP: LoopNodeData,
    BuiltinNodeTypes.LOOP_START: LoopStartNodeData,
    BuiltinNodeTypes.LOOP_END: LoopEndNodeData,
    BuiltinNodeTypes.VARIABLE_ASSIGNER: VariableAssignerNodeData,
    BuiltinNodeTypes.TOOL: ToolNodeData,
}
TOOL_NODE_OUTPUTS = {"text", "files", "json"}
# System variables each app mode provides (Dify's SystemVariableKey).
SYS_VARIABLES = {
    "workflow": {"files", "user_id", "app_id", "workflow_id", "workflow_run_id", "timestamp"},
    "advanced-chat": {
        "files",
        "user_id",
        "app_id",
        "workflow_id",
        "workflow_run_id",
        "timestamp",
        "query",
        "conversation_id",
        "dialogue_count",
    },
}


class RunnerError(Exception):
    """A problem with the runner's own inputs (bad JSON, unknown env name, missing input)."""


# --------------------------------------------------------------------------------------------
# Fake model runtime and local code sandbox
# --------------------------------------------------------------------------------------------


@dataclass
class LLMCallLog:
    """What the fake LLM was asked, shared by every node instance the engine creates."""

    calls: list[list[dict[str, str]]] = field(default_factory=list)


class FakeLLM(LLMProtocol):
    """Implements graphon's LLM protocol; streams ``text`` back in a few chunks."""

    def __init__(self, *, text: str, provider: str, model_name: str, log: LLMCallLog) -> None:
        self._text = text
        self._provider = provider
        self._model_name = model_name
        self._parameters: dict[str, Any] = {}
        self._log = log

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def parameters(self) -> Mapping[str, Any]:
        return dict(self._parameters)

    @parameters.setter
    def parameters(self, value: Mapping[str, Any]) -> None:
        self._parameters = dict(value)

    @property
    def stop(self) -> Sequence[str] | None:
        return None

    def get_model_schema(self) -> AIModelEntity:
        return AIModelEntity(
            model=self._model_name,
            label=I18nObject.model_validate({"en_US": self._model_name}),
            model_type=ModelType.LLM,
            fetch_from=FetchFrom.CUSTOMIZABLE_MODEL,
            model_properties={
                ModelPropertyKey.MODE: LLMMode.CHAT.value,
                ModelPropertyKey.CONTEXT_SIZE: 32768,
            },
        )

    def get_llm_num_tokens(self, prompt_messages: Sequence[PromptMessage]) -> int:
        return sum(len(str(message.content or "")) for message in prompt_messages)

    @overload
    def invoke_llm(
        self,
        *,
        prompt_messages: Sequence[PromptMessage],
        model_parameters: Mapping[str, Any],
        tools: Sequence[PromptMessageTool] | None,
        stop: Sequence[str] | None,
        stream: Literal[False],
    ) -> LLMResult: ...

    @overload
    def invoke_llm(
        self,
        *,
        prompt_messages: Sequence[PromptMessage],
        model_parameters: Mapping[str, Any],
        tools: Sequence[PromptMessageTool] | None,
        stop: Sequence[str] | None,
        stream: Literal[True],
    ) -> Generator[LLMResultChunk, None, None]: ...

    def invoke_llm(
        self,
        *,
        prompt_messages: Sequence[PromptMessage],
        model_parameters: Mapping[str, Any],
        tools: Sequence[PromptMessageTool] | None,
        stop: Sequence[str] | None,
        stream: bool,
    ) -> LLMResult | Generator[LLMResultChunk, None, None]:
        self._log.calls.append(
            [
                {"role": str(message.role.value), "content": str(message.content or "")}
                for message in prompt_messages
            ]
        )
        usage = LLMUsage.empty_usage()
        if not stream:
            return LLMResult(
                model=self._model_name,
                prompt_messages=list(prompt_messages),
                message=AssistantPromptMessage(content=self._text),
                usage=usage,
            )
        return self._chunks(list(prompt_messages), usage)

    def _chunks(
        self, prompt_messages: list[PromptMessage], usage: LLMUsage
    ) -> Generator[LLMResultChunk, None, None]:
        size = max(1, len(self._text) // 3)
        pieces = [self._text[i : i + size] for i in range(0, len(self._text), size)] or [""]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            yield LLMResultChunk(
                model=self._model_name,
                prompt_messages=prompt_messages,
                delta=LLMResultChunkDelta(
                    index=index,
                    message=AssistantPromptMessage(content=piece),
                    usage=usage if last else None,
                    finish_reason="stop" if last else None,
                ),
            )

    @overload
    def invoke_llm_with_structured_output(
        self,
        *,
        prompt_messages: Sequence[PromptMessage],
        json_schema: Mapping[str, Any],
        model_parameters: Mapping[str, Any],
        stop: Sequence[str] | None,
        stream: Literal[False],
    ) -> LLMResultWithStructuredOutput: ...

    @overload
    def invoke_llm_with_structured_output(
        self,
        *,
        prompt_messages: Sequence[PromptMessage],
        json_schema: Mapping[str, Any],
        model_parameters: Mapping[str, Any],
        stop: Sequence[str] | None,
        stream: Literal[True],
    ) -> Generator[LLMResultChunkWithStructuredOutput, None, None]: ...

    def invoke_llm_with_structured_output(
        self,
        *,
        prompt_messages: Sequence[PromptMessage],
        json_schema: Mapping[str, Any],
        model_parameters: Mapping[str, Any],
        stop: Sequence[str] | None,
        stream: bool,
    ) -> LLMResultWithStructuredOutput | Generator[LLMResultChunkWithStructuredOutput, None, None]:
        msg = "the DSL files do not use structured output"
        raise NotImplementedError(msg)

    def is_structured_output_parse_error(self, error: Exception) -> bool:
        return False


class LocalCodeExecutor:
    """Runs a Code node like dify-sandbox does, in a local isolated Python subprocess.

    The program is the one graphon would POST to the sandbox (Dify's runner template around
    the node's ``main``); only the transport differs.
    """

    def execute(
        self, *, language: CodeLanguage, code: str, inputs: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        if language != CodeLanguage.PYTHON3:
            msg = f"only python3 code nodes are supported here, not {language}"
            raise SandboxCodeExecutionError(msg)
        program = _Python3TemplateTransformer.build_program(code=code, inputs=inputs)
        try:
            completed = subprocess.run(
                [sys.executable, "-I", "-c", program.code],
                capture_output=True,
                text=True,
                timeout=CODE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"code node ran longer than {CODE_TIMEOUT_S} s"
            raise SandboxCodeExecutionError(msg) from exc
        if completed.returncode != 0:
            raise SandboxCodeExecutionError(completed.stderr.strip()[-2000:] or "code failed")
        return _Python3TemplateTransformer.parse_result(completed.stdout)

    def is_execution_error(self, error: Exception) -> bool:
        return isinstance(error, SandboxCodeExecutionError)


@dataclass
class PluginHost:
    """Our Dify plugin as the daemon knows it: its declarations (what the daemon extracts from
    the package) and, from the first tool call on, its running process."""

    plugin_dir: Path = PLUGIN_DIR
    _process: PluginProcess | None = None

    def _yaml(self, name: str) -> dict[str, Any]:
        loaded = yaml.safe_load((self.plugin_dir / name).read_text(encoding="utf-8"))
        return loaded if isinstance(loaded, dict) else {}

    @property
    def plugin_id(self) -> str:
        manifest = self._yaml("manifest.yaml")
        return f"{manifest['author']}/{manifest['name']}"

    def tool(self, provider_id: str, tool_name: str) -> dict[str, Any] | None:
        """The declaration of ``tool_name`` if ``provider_id`` names one of our providers."""
        for declaration in self._yaml("manifest.yaml").get("plugins", {}).get("tools", []):
            provider = self._yaml(declaration)
            if provider_id != f"{self.plugin_id}/{provider['identity']['name']}":
                continue
            for tool_file in provider.get("tools") or []:
                tool = self._yaml(tool_file)
                if tool["identity"]["name"] == tool_name:
                    return tool
        return None

    def invoke(self, plugin_id: str, action: str, data: Mapping[str, Any]) -> Iterable[Any]:
        """graphon's ``SlimActionInvoker``: one plugin action, answered by the plugin process."""
        if action == SlimToolAction.GET_TOOL_RUNTIME_PARAMETERS:
            # The daemon answers this from the declaration; the SDK routes no such request.
            provider_id = f"{self.plugin_id}/{data['provider']}"
            tool = self.tool(provider_id, str(data["tool"])) or {}
            yield {"parameters": tool.get("parameters") or []}
            return
        if self._process is None:
            self._process = PluginProcess(plugin_dir=self.plugin_dir)
        try:
            yield from self._process.invoke(str(action), data)
        except PluginInvokeError as exc:
            raise ToolRuntimeInvocationError(str(exc)) from exc

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None


@dataclass
class RunnerNodeFactory:
    """Dify's DSL node factory with the model runtime and code sandbox swapped for local ones."""

    inner: SlimDslNodeFactory
    fake_llm_text: str
    llm_log: LLMCallLog
    plugins: PluginHost
    tool_credentials: list[DslToolCredential]

    def with_runtime_state(self, graph_runtime_state: GraphRuntimeState) -> RunnerNodeFactory:
        return RunnerNodeFactory(
            inner=self.inner.with_runtime_state(graph_runtime_state),
            fake_llm_text=self.fake_llm_text,
            llm_log=self.llm_log,
            plugins=self.plugins,
            tool_credentials=self.tool_credentials,
        )

    def create_node(self, node_config: NodeConfigDict) -> Node[Any]:
        node_id = str(node_config["id"])
        data = node_config["data"]
        payload = data.model_dump(mode="python") if isinstance(data, BaseNodeData) else dict(data)
        node_type = payload["type"]
        if node_type == BuiltinNodeTypes.LLM:
            return self._llm_node(node_id, payload)
        if node_type == BuiltinNodeTypes.TOOL:
            return self._tool_node(node_id, payload)
        if node_type == BuiltinNodeTypes.CODE:
            return CodeNode(
                node_id=node_id,
                data=CodeNodeData.model_validate(payload),
                graph_init_params=self.inner.graph_init_params,
                graph_runtime_state=self.inner.graph_runtime_state,
                code_executor=LocalCodeExecutor(),
                code_limits=CodeNodeLimits(
                    max_string_length=400_000,
                    max_number=9_223_372_036_854_775_807,
                    min_number=-9_223_372_036_854_775_807,
                    max_precision=20,
                    max_depth=5,
                    max_number_array_length=1_000,
                    max_string_array_length=30,
                    max_object_array_length=30,
                ),
            )
        return self.inner.create_node(node_config)

    def _tool_node(self, node_id: str, payload: dict[str, Any]) -> ToolNode:
        # Resolved as graphon's factory resolves a plugin tool; only the transport differs.
        data = ToolNodeData.model_validate(payload)
        plugin_id = _find_tool_plugin_id(
            node_data=data,
            dependencies=[d for d in self.inner.dependencies if d.plugin_unique_identifier],
        )
        if plugin_id is None:
            msg = f"tool node {node_id}: no dependency provides {data.provider_id!r}"
            raise RunnerError(msg)
        provider = _canonical_vendor(data.provider_id) or ""
        credential = resolve_dsl_tool_credential(
            credentials=self.tool_credentials,
            plugin_id=plugin_id,
            provider_id=data.provider_id,
            provider=provider,
            tool_name=data.tool_name,
        )
        runtime = SlimToolNodeRuntime(
            config=self.inner.slim_client_config,
            plugin_id=plugin_id,
            provider=provider,
            provider_id=data.provider_id,
            tool_name=data.tool_name,
            credentials=credential.values,
            credential_type=credential.credential_type,
            action_invoker=self.plugins.invoke,
        )
        return ToolNode(
            node_id=node_id,
            data=data,
            graph_init_params=self.inner.graph_init_params,
            graph_runtime_state=self.inner.graph_runtime_state,
            tool_file_manager=_UnsupportedToolFileManager(),
            runtime=runtime,
        )

    def _llm_node(self, node_id: str, payload: dict[str, Any]) -> LLMNode:
        # Same normalisation and dependency check as graphon's factory; only the runtime differs.
        model = dict(payload.get("model") or {})
        raw_provider = str(model.get("provider") or "")
        if _find_plugin_id(provider=raw_provider, dependencies=self.inner.dependencies) is None:
            msg = f"LLM node {node_id}: no dependency provides {raw_provider!r}"
            raise RunnerError(msg)
        model["provider"] = raw_provider.rstrip("/").split("/")[-1]
        payload = {**payload, "model": model}
        return LLMNode(
            node_id=node_id,
            data=LLMNodeData.model_validate(payload),
            graph_init_params=self.inner.graph_init_params,
            graph_runtime_state=self.inner.graph_runtime_state,
            model_instance=FakeLLM(
                text=self.fake_llm_text,
                provider=model["provider"],
                model_name=str(model.get("name") or ""),
                log=self.llm_log,
            ),
            llm_file_saver=_NoFiles(),
            prompt_message_serializer=_Passthrough(),
            default_query_selector=("sys", "query"),
        )


class _NoFiles:
    def save_binary_string(
        self,
        data: bytes,
        mime_type: str,
        file_type: FileType,
        extension_override: str | None = None,
    ) -> File:
        raise RunnerError("the fake LLM returns text only")

    def save_remote_url(self, url: str, file_type: FileType) -> File:
        raise RunnerError("the fake LLM returns text only")


class _Passthrough:
    def serialize(self, *, model_mode: LLMMode, prompt_messages: Sequence[PromptMessage]) -> object:
        return list(prompt_messages)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass
class LoadedDsl:
    path: Path
    text: str
    raw: dict[str, Any]
    plan: DslImportPlan

    @property
    def mode(self) -> str:
        return str(self.raw.get("app", {}).get("mode", ""))

    @property
    def graph(self) -> Mapping[str, Any]:
        graph = self.plan.document.graph_config
        if graph is None:
            raise RunnerError(f"{self.path}: no executable graph ({self.plan.load_reason})")
        return graph

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.graph.get("nodes", []))

    @property
    def edges(self) -> list[dict[str, Any]]:
        return list(self.graph.get("edges", []))

    @property
    def start_id(self) -> str:
        starts = [n["id"] for n in self.nodes if n["data"]["type"] == BuiltinNodeTypes.START]
        if len(starts) != 1:
            raise RunnerError(f"{self.path}: expected one start node, found {starts}")
        return str(starts[0])


def load(path: Path) -> LoadedDsl:
    text = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise RunnerError(f"{path}: not a YAML mapping")
    return LoadedDsl(path=path, text=text, raw=raw, plan=inspect(text))


def build_engine(
    dsl: LoadedDsl,
    *,
    inputs: Mapping[str, Any],
    env: Mapping[str, Any],
    fake_llm_text: str,
    query: str | None,
    plugins: PluginHost | None = None,
    tool_credentials: Sequence[Mapping[str, Any]] = (),
) -> tuple[GraphEngine, LLMCallLog]:
    start_id = dsl.start_id
    pool = VariablePool()
    declared_env = {
        v.name: v.value for v in dsl.plan.document.runtime_variables.environment_variables
    }
    unknown = sorted(set(env) - set(declared_env))
    if unknown:
        raise RunnerError(f"unknown environment variables: {unknown}")
    for name, value in {**declared_env, **env}.items():
        pool.add(("env", name), value)
    run_id = str(uuid.uuid4())
    system: dict[str, Any] = {
        "workflow_run_id": run_id,
        "workflow_id": str(uuid.uuid4()),
        "app_id": str(uuid.uuid4()),
        "user_id": "engine-runner",
        "files": [],
        "timestamp": int(time.time()),
    }
    if dsl.mode == "advanced-chat":
        system |= {"query": query or "", "conversation_id": str(uuid.uuid4()), "dialogue_count": 1}
    for name, value in system.items():
        pool.add(("sys", name), value)
    start_node = next(n for n in dsl.nodes if n["id"] == start_id)
    for name, value in prepare_inputs(StartNodeData.model_validate(start_node["data"]), inputs):
        pool.add((start_id, name), value)

    init_params = GraphInitParams(
        workflow_id=system["workflow_id"],
        graph_config=dsl.graph,
        run_context={"workflow_run_id": run_id},
        call_depth=0,
    )
    runtime_state = GraphRuntimeState(variable_pool=pool, start_at=time.time())
    llm_log = LLMCallLog()
    factory = RunnerNodeFactory(
        inner=SlimDslNodeFactory(
            graph_config=dsl.graph,
            graph_init_params=init_params,
            graph_runtime_state=runtime_state,
            credentials=DslCredentials(),
            dependencies=list(dsl.plan.dependencies),
        ),
        fake_llm_text=fake_llm_text,
        llm_log=llm_log,
        plugins=plugins or PluginHost(),
        tool_credentials=[DslToolCredential.model_validate(c) for c in tool_credentials],
    )
    graph = Graph.init(graph_config=dsl.graph, node_factory=factory, root_node_id=start_id)
    engine = GraphEngine(
        workflow_id=system["workflow_id"],
        graph=graph,
        graph_runtime_state=runtime_state,
        command_channel=InMemoryChannel(),
    )
    return engine, llm_log


def prepare_inputs(start: StartNodeData, inputs: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """What Dify's app layer does to user inputs before the engine sees them."""
    for variable in start.variables:
        value = inputs.get(variable.variable)
        if value is None or value == "":
            if variable.required:
                raise RunnerError(f"{variable.variable} is required in input form")
            value = variable.default
            if value is None:
                continue
        kind = str(variable.type)
        if kind == "number" and isinstance(value, str):
            value = float(value) if "." in value else int(value)
        if kind == "select" and value not in variable.options:
            raise RunnerError(f"{variable.variable} must be one of {list(variable.options)}")
        if kind in {"text-input", "paragraph"}:
            if not isinstance(value, str):
                raise RunnerError(f"{variable.variable} must be a string")
            if variable.max_length is not None and len(value) > variable.max_length:
                raise RunnerError(f"{variable.variable} is longer than {variable.max_length}")
        yield variable.variable, value


# --------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------


def validate(path: Path) -> list[str]:
    try:
        dsl = load(path)
    except Exception as exc:  # every failure is a finding here
        return [f"cannot load: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    problems += _check_top_level(dsl)
    if not dsl.plan.loadable:
        return [*problems, f"graphon cannot load it: {dsl.plan.load_reason}"]
    problems += _check_nodes(dsl)
    problems += _check_edges(dsl)
    problems += _check_references(dsl)
    problems += _check_code_nodes(dsl)
    problems += _check_http_nodes(dsl)
    if not problems:
        try:
            start = StartNodeData.model_validate(
                next(n["data"] for n in dsl.nodes if n["id"] == dsl.start_id)
            )
            sample = {
                v.variable: ("x" if v.type in {"text-input", "paragraph"} else None)
                for v in start.variables
            }
            build_engine(dsl, inputs=sample, env={}, fake_llm_text="x", query="x")
        except Exception as exc:
            problems.append(f"graph does not build: {type(exc).__name__}: {exc}")
    return problems


def _check_top_level(dsl: LoadedDsl) -> list[str]:
    raw = dsl.raw
    problems = []
    if raw.get("version") != DSL_VERSION or not isinstance(raw.get("version"), str):
        problems.append(f"version must be the string {DSL_VERSION!r}, got {raw.get('version')!r}")
    if raw.get("kind") != "app":
        problems.append("kind must be 'app'")
    if dsl.mode not in SYS_VARIABLES:
        problems.append(f"app.mode must be workflow or advanced-chat, got {dsl.mode!r}")
    if not isinstance(raw.get("dependencies"), list):
        problems.append("dependencies must be a list")
    for key in ("name", "icon", "icon_background", "description"):
        if key not in raw.get("app", {}):
            problems.append(f"app.{key} is missing")
    workflow = raw.get("workflow", {})
    for key in ("graph", "features", "environment_variables", "conversation_variables"):
        if key not in workflow:
            problems.append(f"workflow.{key} is missing")
    for variable in workflow.get("environment_variables") or []:
        name = variable.get("name")
        if variable.get("value_type") not in {"string", "number", "secret"}:
            problems.append(f"env {name}: value_type must be string|number|secret")
        if variable.get("selector") != ["env", name]:
            problems.append(f"env {name}: selector must be [env, {name}]")
        if variable.get("value_type") == "secret" and variable.get("value"):
            problems.append(f"env {name}: a secret must ship blank")
    return problems


def _check_nodes(dsl: LoadedDsl) -> list[str]:
    problems = []
    types = [str(n["data"]["type"]) for n in dsl.nodes]
    if dsl.mode == "workflow" and ("end" not in types or "answer" in types):
        problems.append("a workflow ends in End nodes and has no Answer node")
    if dsl.mode == "advanced-chat" and ("answer" not in types or "end" in types):
        problems.append("a chatflow ends in Answer nodes and has no End node")
    for node in dsl.nodes:
        node_id, data = str(node["id"]), node["data"]
        where = f"node {node_id}"
        if not NODE_ID.match(node_id):
            problems.append(f"{where}: id must match [A-Za-z0-9_]+ to be referenceable")
        model = NODE_DATA_MODELS.get(str(data["type"]))
        if model is None:
            problems.append(f"{where}: node type {data['type']!r} is not used by these files")
            continue
        try:
            model.model_validate(data)
        except ValidationError as exc:
            problems.append(f"{where}: invalid {model.__name__}: {exc}")
        retry = data.get("retry_config")
        if retry is not None:
            if not isinstance(retry, dict) or set(retry) - RETRY_KEYS:
                problems.append(f"{where}: retry_config keys must be {sorted(RETRY_KEYS)}")
            elif "retry_enabled" not in retry:
                problems.append(f"{where}: retry_config without retry_enabled does nothing")
            elif retry.get("max_retries", 0) > 10 or retry.get("retry_interval", 0) > 5000:
                problems.append(f"{where}: max_retries <= 10 and retry_interval <= 5000 ms")
        if data["type"] == "start":
            problems += _check_start(where, data)
        if data["type"] == "tool":
            problems += _check_tool(dsl, where, data)
        if data["type"] == "llm":
            provider = str(data.get("model", {}).get("provider", ""))
            if _find_plugin_id(provider=provider, dependencies=dsl.plan.dependencies) is None:
                problems.append(f"{where}: no entry in dependencies provides {provider!r}")
    return problems


def _check_tool(dsl: LoadedDsl, where: str, data: Mapping[str, Any]) -> list[str]:
    """A plugin tool node: a dependency provides it, and it passes what the tool declares."""
    problems = []
    node_data = ToolNodeData.model_validate(data)
    plugins = [d for d in dsl.plan.dependencies if d.plugin_unique_identifier]
    if _find_tool_plugin_id(node_data=node_data, dependencies=plugins) is None:
        problems.append(f"{where}: no entry in dependencies provides {node_data.provider_id!r}")
    tool = PluginHost().tool(node_data.provider_id, node_data.tool_name)
    if tool is None:
        return [*problems, f"{where}: the plugin declares no tool {node_data.tool_name!r}"]
    declared = {p["name"]: p for p in tool.get("parameters") or []}
    for key in node_data.tool_parameters:
        if declared.get(key, {}).get("form") != "llm":
            problems.append(f"{where}: tool_parameters.{key} is not an llm-form parameter")
    for key in node_data.tool_configurations:
        if declared.get(key, {}).get("form") != "form":
            problems.append(f"{where}: tool_configurations.{key} is not a form parameter")
    for name, parameter in declared.items():
        given = node_data.tool_parameters if parameter["form"] == "llm" else {}
        if parameter.get("required") and parameter["form"] == "llm" and name not in given:
            problems.append(f"{where}: the required parameter {name} is not set")
    return problems


def _check_start(where: str, data: Mapping[str, Any]) -> list[str]:
    problems = []
    for variable in data.get("variables", []):
        options = variable.get("options") or []
        if any(not isinstance(option, str) for option in options):
            problems.append(f"{where}: {variable.get('variable')} options must be quoted strings")
        default = variable.get("default")
        if (
            variable.get("type") == "select"
            and default not in (None, "")
            and default not in options
        ):
            problems.append(f"{where}: {variable.get('variable')} default is not an option")
    return problems


def _check_edges(dsl: LoadedDsl) -> list[str]:
    problems = []
    nodes = {str(n["id"]): n for n in dsl.nodes}
    by_id = {node_id: node["data"] for node_id, node in nodes.items()}
    handles: dict[str, set[str]] = {}
    for edge in dsl.edges:
        source, handle = str(edge["source"]), str(edge.get("sourceHandle") or "source")
        handles.setdefault(source, set()).add(handle)
        data = by_id[source]
        if handle == "fail-branch" and data.get("error_strategy") != "fail-branch":
            problems.append(f"edge {edge.get('id')}: fail-branch from a node without fail-branch")
        if data["type"] == "if-else" and handle != "false":
            case_ids = {c["case_id"] for c in data.get("cases") or []}
            if handle not in case_ids:
                problems.append(f"edge {edge.get('id')}: unknown if-else case {handle!r}")
        if data["type"] not in {"if-else"} and handle not in {"source", "fail-branch"}:
            problems.append(f"edge {edge.get('id')}: unexpected sourceHandle {handle!r}")
        in_loop = _loop_of(dsl, nodes[str(edge["target"])]) is not None
        if bool(edge.get("data", {}).get("isInLoop")) != in_loop:
            problems.append(f"edge {edge.get('id')}: data.isInLoop must be {in_loop}")
    for node_id, data in by_id.items():
        outgoing = handles.get(node_id, set())
        if data.get("error_strategy") == "fail-branch" and "fail-branch" not in outgoing:
            problems.append(f"node {node_id}: fail-branch strategy but no fail-branch edge")
        if data["type"] == "if-else":
            expected = {c["case_id"] for c in data.get("cases") or []} | {"false"}
            if missing := expected - outgoing:
                problems.append(f"node {node_id}: branches without an edge: {sorted(missing)}")
        if data["type"] in {"end", "answer"} and outgoing:
            problems.append(f"node {node_id}: {data['type']} nodes end a branch")
    reachable = _descendants(dsl, dsl.start_id)
    for node in dsl.nodes:
        loop_id = _loop_of(dsl, node)
        if loop_id is None:
            ok = node["id"] in reachable
        else:
            ok = loop_id in reachable and node["id"] in _descendants(dsl, _loop_start(dsl, loop_id))
        if not ok:
            problems.append(f"node {node['id']}: not reachable from its start")
    return problems


def _descendants(dsl: LoadedDsl, node_id: str) -> set[str]:
    seen, stack = {node_id}, [node_id]
    while stack:
        current = stack.pop()
        for edge in dsl.edges:
            if edge["source"] == current and edge["target"] not in seen:
                seen.add(str(edge["target"]))
                stack.append(str(edge["target"]))
    return seen


def _ancestors(dsl: LoadedDsl, node_id: str) -> set[str]:
    seen, stack = set(), [node_id]
    while stack:
        current = stack.pop()
        for edge in dsl.edges:
            if edge["target"] == current and edge["source"] not in seen:
                seen.add(str(edge["source"]))
                stack.append(str(edge["source"]))
    return seen


def _loop_of(dsl: LoadedDsl, node: Mapping[str, Any]) -> str | None:
    """The Loop a node sits in (a loop-start names its loop only through ``parentId``)."""
    loop_id = node["data"].get("loop_id") or node.get("parentId")
    return str(loop_id) if loop_id else None


def _loop_start(dsl: LoadedDsl, loop_id: str) -> str:
    loop = next(n for n in dsl.nodes if n["id"] == loop_id)
    return str(loop["data"]["start_node_id"])


def _outputs(dsl: LoadedDsl, node: Mapping[str, Any]) -> set[str]:
    """Variable names a node makes available to the nodes after it."""
    data = node["data"]
    names: set[str] = set()
    match data["type"]:
        case "start":
            names = {v["variable"] for v in data.get("variables", [])}
        case "llm":
            names = {"text", "reasoning_content", "usage"}
        case "code":
            names = set(data.get("outputs") or {})
        case "http-request":
            names = {"body", "status_code", "headers", "files"}
        case "loop":
            names = {v["label"] for v in data.get("loop_variables") or []} | {"loop_round"}
        case "answer":
            names = {"answer"}
        case "tool":
            tool = PluginHost().tool(str(data.get("provider_id")), str(data.get("tool_name")))
            schema = (tool or {}).get("output_schema") or {}
            names = TOOL_NODE_OUTPUTS | set(schema.get("properties") or {})
    if data.get("error_strategy"):
        names |= {"error_message", "error_type"}
    return names


def _visible_nodes(dsl: LoadedDsl, node_id: str) -> set[str]:
    """Nodes whose outputs a node may read: those upstream, and the loops it sits in."""
    by_id = {str(n["id"]): n for n in dsl.nodes}
    own_loop = _loop_of(dsl, by_id[node_id])
    visible = _ancestors(dsl, node_id)
    loop_id = own_loop
    while loop_id is not None:
        visible |= {loop_id} | _ancestors(dsl, loop_id)
        loop_id = _loop_of(dsl, by_id[loop_id])
    if by_id[node_id]["data"]["type"] == BuiltinNodeTypes.LOOP:
        visible.add(node_id)  # break conditions read the loop's own variables
    # Nodes inside another loop are not addressable from here.
    return {n for n in visible if _loop_of(dsl, by_id[n]) in {None, own_loop}}


def _references(data: Any) -> Iterable[tuple[str, Sequence[str]]]:
    """Every (how, selector) a node's data reads: template references and selectors."""
    if isinstance(data, str):
        for match in REFERENCE_LIKE.finditer(data):
            yield "template", match.group(1).split(".")
        return
    if isinstance(data, list):
        for item in data:
            yield from _references(item)
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        # Selectors: node/End/condition selectors, and Loop / Assigner values read from a variable.
        is_selector = key in {"value_selector", "variable_selector"} or (
            key == "value" and "variable" in {data.get("value_type"), data.get("input_type")}
        )
        if is_selector and isinstance(value, list) and value:
            yield "selector", [str(part) for part in value]
        elif key in {"code", "desc", "title"}:
            continue
        else:
            yield from _references(value)


def _check_references(dsl: LoadedDsl) -> list[str]:
    problems = []
    by_id = {str(n["id"]): n for n in dsl.nodes}
    env_names = {v.name for v in dsl.plan.document.runtime_variables.environment_variables}
    sys_names = SYS_VARIABLES.get(dsl.mode, set())
    for node in dsl.nodes:
        node_id = str(node["id"])
        visible = _visible_nodes(dsl, node_id)
        for how, selector in _references(node["data"]):
            text = ".".join(selector)
            where = f"node {node_id}: {how} {text!r}"
            if how == "template" and not VARIABLE_PATTERN.fullmatch("{{#" + text + "#}}"):
                problems.append(f"{where} is not a valid reference and would stay literal text")
                continue
            if len(selector) < 2:
                problems.append(f"{where} is too short")
                continue
            head, name = selector[0], selector[1]
            if head == "env":
                if name not in env_names:
                    problems.append(f"{where}: no such environment variable")
            elif head == "sys":
                if name not in sys_names:
                    problems.append(f"{where}: no such system variable in {dsl.mode}")
            elif head == "conversation":
                problems.append(f"{where}: these files declare no conversation variables")
            elif head not in by_id:
                problems.append(f"{where}: no node {head!r}")
            elif head not in visible:
                problems.append(f"{where}: node {head!r} is not upstream")
            elif name not in _outputs(dsl, by_id[head]):
                problems.append(f"{where}: node {head!r} has no output {name!r}")
    return problems


def _check_code_nodes(dsl: LoadedDsl) -> list[str]:
    problems = []
    for node in dsl.nodes:
        data = node["data"]
        if data["type"] != "code":
            continue
        where = f"node {node['id']}"
        try:
            tree = ast.parse(data.get("code", ""))
        except SyntaxError as exc:
            problems.append(f"{where}: code does not parse: {exc}")
            continue
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        if not mains:
            problems.append(f"{where}: code must define main()")
            continue
        params = {a.arg for a in mains[0].args.args}
        declared = {v["variable"] for v in data.get("variables", [])}
        if params != declared:
            problems.append(
                f"{where}: main() takes {sorted(params)}, node gives {sorted(declared)}"
            )
    return problems


def _check_http_nodes(dsl: LoadedDsl) -> list[str]:
    problems = []
    by_id = {str(n["id"]): n for n in dsl.nodes}
    secrets = {
        v.name
        for v in dsl.plan.document.runtime_variables.environment_variables
        if v.source.get("value_type") == "secret"
    }
    for node in dsl.nodes:
        data = node["data"]
        if data["type"] != "http-request":
            continue
        where = f"node {node['id']}"
        timeout = data.get("timeout") or {}
        if not all(timeout.get(key) for key in ("connect", "read", "write")):
            problems.append(f"{where}: set timeout.connect/read/write deliberately")
        if not (data.get("retry_config") or {}).get("retry_enabled"):
            problems.append(f"{where}: retry is off")
        if not data.get("error_strategy"):
            problems.append(f"{where}: no error_strategy: a gateway error would abort the run")
        auth = data.get("authorization") or {}
        api_key = str((auth.get("config") or {}).get("api_key", ""))
        for match in REFERENCE_LIKE.finditer(api_key):
            head, _, name = match.group(1).partition(".")
            if head != "env" or name not in secrets:
                problems.append(f"{where}: the api key must come from a secret env variable")
        if auth.get("type") == "api-key" and not REFERENCE_LIKE.search(api_key):
            problems.append(f"{where}: the api key must come from a secret env variable")
        body = data.get("body") or {}
        if body.get("type") == "json":
            items = body.get("data") or []
            value = str(items[0].get("value", "")) if len(items) == 1 else ""
            reference = VARIABLE_PATTERN.fullmatch(value.strip())
            source = by_id.get(reference.group(1).split(".")[0]) if reference else None
            output = reference.group(1).split(".")[1] if reference else ""
            if (
                source is None
                or source["data"]["type"] != "code"
                or (source["data"].get("outputs") or {}).get(output, {}).get("type") != "object"
            ):
                problems.append(
                    f"{where}: a JSON body must be exactly one {{{{#code_node.object#}}}} "
                    "built by a Code node"
                )
        elif body.get("type") not in (None, "none"):
            problems.append(f"{where}: body type {body.get('type')!r}; send JSON from a Code node")
    return problems


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"))
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def run(
    path: Path,
    *,
    inputs: Mapping[str, Any],
    env: Mapping[str, Any],
    fake_llm_text: str,
    query: str | None,
    tool_credentials: Sequence[Mapping[str, Any]] = (),
    plugin_dir: Path = PLUGIN_DIR,
) -> dict[str, Any]:
    dsl = load(path)
    plugins = PluginHost(plugin_dir=plugin_dir)
    try:
        engine, llm_log = build_engine(
            dsl,
            inputs=inputs,
            env=env,
            fake_llm_text=fake_llm_text,
            query=query,
            plugins=plugins,
            tool_credentials=tool_credentials,
        )
        return _run(engine, llm_log)
    finally:
        plugins.close()


def _run(engine: GraphEngine, llm_log: LLMCallLog) -> dict[str, Any]:
    result: dict[str, Any] = {
        "status": "unknown",
        "outputs": {},
        "answer": "",
        "error": None,
        "nodes": [],
        "loop_rounds": {},
        "llm_calls": llm_log.calls,
    }
    for event in engine.run():
        if isinstance(event, NodeRunRetryEvent):
            result["nodes"].append(_node_entry(event, "retry", retry_index=event.retry_index))
        elif isinstance(event, NodeRunSucceededEvent):
            result["nodes"].append(_node_entry(event, "succeeded"))
        elif isinstance(event, NodeRunExceptionEvent):
            result["nodes"].append(_node_entry(event, "exception", error=event.error))
        elif isinstance(event, NodeRunFailedEvent):
            result["nodes"].append(_node_entry(event, "failed", error=event.error))
        elif isinstance(event, NodeRunLoopNextEvent):
            result["loop_rounds"][event.node_id] = event.index + 1
        elif isinstance(event, NodeRunLoopSucceededEvent):
            rounds = event.outputs.get("loop_round")
            result["loop_rounds"][event.node_id] = rounds if isinstance(rounds, int) else 0
        elif isinstance(event, GraphRunSucceededEvent):
            result |= {"status": "succeeded", "outputs": _jsonable(event.outputs)}
        elif isinstance(event, GraphRunPartialSucceededEvent):
            result |= {"status": "partial-succeeded", "outputs": _jsonable(event.outputs)}
        elif isinstance(event, GraphRunFailedEvent):
            result |= {"status": "failed", "error": event.error}
    # A chatflow's reply is what its Answer nodes rendered; the run outputs carry it.
    result["answer"] = str(result["outputs"].get("answer") or "")
    return result


def _node_entry(event: Any, status: str, **extra: Any) -> dict[str, Any]:
    run_result = event.node_run_result
    return {
        "node_id": event.node_id,
        "node_type": str(event.node_type),
        "status": status,
        "in_loop_id": event.in_loop_id,
        "edge_source_handle": run_result.edge_source_handle,
        "outputs": _jsonable(dict(run_result.outputs or {})),
        "inputs": _jsonable(dict(run_result.inputs or {})),
        # HTTP nodes log the request as sent (secrets masked), as Dify's run log shows it.
        "request": str((run_result.process_data or {}).get("request") or ""),
        **extra,
    }


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="validate DSL files")
    check.add_argument("files", nargs="+", type=Path)
    execute = commands.add_parser("run", help="run one DSL file with graphon's GraphEngine")
    execute.add_argument("file", type=Path)
    execute.add_argument("--inputs", default="{}", help="Start node inputs, JSON object")
    execute.add_argument("--env", default="{}", help="environment variable values, JSON object")
    execute.add_argument("--fake-llm-text", default="", help="what the fake LLM answers")
    execute.add_argument("--query", default=None, help="sys.query for chatflows")
    execute.add_argument(
        "--tool-credentials", default="[]", help="plugin tool credentials (DslToolCredential list)"
    )
    execute.add_argument(
        "--plugin-dir", type=Path, default=PLUGIN_DIR, help="the Dify plugin (source or unpacked)"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    if args.command == "validate":
        report = {
            str(path): {"ok": not (problems := validate(path)), "problems": problems}
            for path in args.files
        }
        print(json.dumps({"files": report}, ensure_ascii=False))
        return 0 if all(item["ok"] for item in report.values()) else 1
    try:
        result = run(
            args.file,
            inputs=json.loads(args.inputs),
            env=json.loads(args.env),
            fake_llm_text=args.fake_llm_text,
            query=args.query,
            tool_credentials=json.loads(args.tool_credentials),
            plugin_dir=args.plugin_dir,
        )
    except (RunnerError, ValueError) as exc:
        print(json.dumps({"status": "runner-error", "error": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
