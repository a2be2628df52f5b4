"""Run the Dify plugin the way Dify's plugin daemon runs it locally, and talk to it.

Dify's plugin daemon (a Go program we cannot fetch here) starts a locally installed Python
plugin as ``python -m main`` in the plugin's folder, in the plugin's own environment, and talks
to the dify_plugin SDK over the process's stdin/stdout: one JSON object per line in, one per
line out. This module does exactly that part, so tests exercise the real plugin in the real SDK
(its ``Plugin`` server, request router, ``PluginExecutor``, ``ToolRuntime``, the tool classes
and their message types) and only the daemon's side is ours. What is not here: the daemon's
package install, its encryption of credentials, and Dify's API in front of it.

The protocol, as the SDK 0.7.4 speaks it (``dify_plugin.core.server.stdio``)::

    plugin → us   the manifest as JSON (first line, ``PluginConfiguration``)
    us → plugin   {"session_id", "event": "request", "data": {"type": "tool",
                   "action": "invoke_tool" | "validate_tool_credentials", "user_id", ...}}
    plugin → us   {"event": "session", "session_id", "data": {"type": "stream", "data": MSG}}
                  ... then {"type": "end"} or {"type": "error", "data": {"error_type", "message"}}
                  and unrelated {"event": "log" | "heartbeat" | "error"} lines

Standard library and PyYAML only: it is imported both by the gateway's tests (``.venv``) and
by the Dify engine runner (``.venv-dify``).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "integrations" / "dify-plugin"
PLUGIN_PYTHON = ROOT / ".venv-plugin" / "bin" / "python"
SETUP_HINT = (
    "the plugin's environment is missing: run `make test` (it builds .venv-plugin), or "
    "`make .venv-plugin/.installed`"
)


class PluginInvokeError(Exception):
    """The plugin answered a request with an error (what Dify shows as the node's error)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class PluginProcess:
    """One running plugin process (a context manager); :meth:`invoke` is thread-safe."""

    def __init__(
        self,
        *,
        plugin_dir: Path = PLUGIN_DIR,
        python: Path = PLUGIN_PYTHON,
        startup_timeout: float = 60.0,
    ) -> None:
        if not python.exists():
            raise AssertionError(SETUP_HINT)
        self.plugin_dir = plugin_dir
        env = {
            key: value
            for key, value in os.environ.items()
            if key.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
        }
        env |= {
            "INSTALL_METHOD": "local",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
        # Closed in close(): the process outlives this constructor.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            [str(python), "-m", "main"],
            cwd=plugin_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._sessions: dict[str, queue.Queue[dict[str, Any] | None]] = {}
        self._lock = threading.Lock()
        self._manifest: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.logs: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            manifest = self._manifest.get(timeout=startup_timeout)
        except queue.Empty:
            manifest = None
        if manifest is None:
            self.close()
            raise AssertionError(f"the plugin did not start:\n{self.stderr_tail()}")
        self.manifest: dict[str, Any] = manifest

    def __enter__(self) -> PluginProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()

    def stderr_tail(self, chars: int = 3000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-chars:]

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(message, dict):
                continue
            if "event" not in message:  # the manifest, first thing the SDK writes
                self._manifest.put(message)
            elif message["event"] == "session" and message.get("session_id"):
                with self._lock:
                    target = self._sessions.get(message["session_id"])
                if target is not None:
                    target.put(message.get("data") or {})
            else:
                self.logs.append(message)
        # The process ended: wake everyone up.
        self._manifest.put(None)
        with self._lock:
            for target in self._sessions.values():
                target.put(None)

    def invoke(
        self,
        action: str,
        data: Mapping[str, Any],
        *,
        kind: str = "tool",
        user_id: str = "dify-test-user",
        timeout: float = 300.0,
    ) -> Iterator[dict[str, Any]]:
        """Send one request; yield each streamed payload until the plugin ends the session."""
        session_id = uuid.uuid4().hex
        inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        with self._lock:
            self._sessions[session_id] = inbox
        request = {
            "session_id": session_id,
            "event": "request",
            "data": {"type": kind, "action": action, "user_id": user_id, **data},
        }
        assert self._proc.stdin is not None
        try:
            with self._lock:
                self._proc.stdin.write(json.dumps(request).encode() + b"\n")
                self._proc.stdin.flush()
            while True:
                try:
                    item = inbox.get(timeout=timeout)
                except queue.Empty as exc:
                    raise AssertionError(f"the plugin did not answer {action} in time") from exc
                if item is None:
                    raise AssertionError(f"the plugin exited:\n{self.stderr_tail()}")
                kind_of = item.get("type")
                if kind_of == "stream":
                    yield dict(item.get("data") or {})
                elif kind_of == "end":
                    return
                elif kind_of == "error":
                    error = item.get("data") or {}
                    raise PluginInvokeError(
                        str(error.get("error_type") or "Error"), str(error.get("message") or error)
                    )
        finally:
            with self._lock:
                self._sessions.pop(session_id, None)

    def invoke_tool(
        self, tool: str, parameters: Mapping[str, Any], credentials: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """All messages of one tool invocation (``ToolInvokeMessage`` dumps)."""
        return list(
            self.invoke(
                "invoke_tool",
                {
                    "provider": self.provider,
                    "tool": tool,
                    "credentials": dict(credentials),
                    "credential_type": "api-key",
                    "tool_parameters": dict(parameters),
                },
            )
        )

    def validate_credentials(self, credentials: Mapping[str, Any]) -> dict[str, Any]:
        answers = list(
            self.invoke(
                "validate_tool_credentials",
                {"provider": self.provider, "credentials": dict(credentials)},
            )
        )
        return answers[-1] if answers else {}

    @property
    def provider(self) -> str:
        """The tool provider's name, as the daemon reads it from the provider declaration."""
        declared = (self.manifest.get("plugins") or {}).get("tools") or []
        text = (self.plugin_dir / declared[0]).read_text(encoding="utf-8")
        return str(yaml.safe_load(text)["identity"]["name"])
