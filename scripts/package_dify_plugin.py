"""Validate the Dify plugin in ``integrations/dify-plugin`` and package it as a ``.difypkg``.

Run with the plugin's environment (``.venv-plugin``, which has the dify_plugin SDK)::

    .venv-plugin/bin/python scripts/package_dify_plugin.py [--out DIR] [--plugin DIR]

It prints one JSON object: ``{"package", "identifier", "files"}``.

Dify's own packager is the ``dify`` CLI, a Go binary this project cannot fetch, so this script
does what it does, by hand and small:

1. load ``manifest.yaml``, every tool provider declaration and every tool declaration with the
   SDK's own pydantic models (``PluginConfiguration``, ``ToolProviderConfiguration`` — the
   classes the plugin runtime itself loads them with), and load every provider and tool class
   with the SDK's class loader (exactly one subclass of ``ToolProvider`` / ``Tool`` per file);
2. check what the daemon checks when it decodes a package — the icons exist under
   ``_assets/``, ``README.md`` exists, the privacy policy the manifest names exists — and what
   this project promises: every label and description in English and Simplified Chinese;
3. zip the folder (no caches, no dotfiles) with fixed timestamps, so the same sources give the
   same bytes, and compute the plugin's unique identifier ``author/name:version@checksum`` the
   way the daemon does (sha256 over the sorted (sha256(path), sha256(content)) pairs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "integrations" / "dify-plugin"
LANGUAGES = ("en_US", "zh_Hans")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_I18N_KEYS = frozenset(
    {"label", "description", "human_description", "human", "help", "placeholder"}
)


class PluginError(Exception):
    """The plugin folder would not make a valid package; the message names the file."""


def package_files(plugin_dir: Path) -> list[str]:
    """Paths (relative, ``/``-separated) that go into the package, sorted."""
    found = []
    for folder, dirs, files in os.walk(plugin_dir):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
        for name in files:
            if name.startswith(".") or name.endswith((".pyc", ".difypkg")):
                continue
            found.append((Path(folder) / name).relative_to(plugin_dir).as_posix())
    return sorted(found)


def checksum(plugin_dir: Path, files: list[str]) -> str:
    """The plugin daemon's package checksum (``decoder.CalculateChecksum``)."""
    data = b""
    for name in sorted(files):
        data += hashlib.sha256(name.encode()).digest()
        data += hashlib.sha256((plugin_dir / name).read_bytes()).digest()
    return hashlib.sha256(data).hexdigest()


def _i18n_gaps(node: Any, where: str) -> Iterator[str]:
    """Every label/description-like mapping that lacks one of :data:`LANGUAGES`."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{where}.{key}"
            if key in _I18N_KEYS and isinstance(value, Mapping) and "en_US" in value:
                missing = [lang for lang in LANGUAGES if not value.get(lang)]
                if missing:
                    yield f"{here} has no {', '.join(missing)}"
                continue
            yield from _i18n_gaps(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _i18n_gaps(item, f"{where}[{index}]")


def _load_yaml(plugin_dir: Path, name: str) -> dict[str, Any]:
    path = plugin_dir / name
    if not path.is_file():
        raise PluginError(f"{name} is named but does not exist")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise PluginError(f"{name} is not a YAML mapping")
    return loaded


def validate(plugin_dir: Path) -> dict[str, Any]:
    """Check the plugin folder; returns the manifest as loaded. Raises :class:`PluginError`."""
    # The SDK reads declarations relative to the working directory, as the runtime does.
    os.chdir(plugin_dir)
    sys.path.insert(0, str(plugin_dir))
    from dify_plugin.core.entities.plugin.setup import PluginConfiguration
    from dify_plugin.core.utils.class_loader import load_single_subclass_from_source
    from dify_plugin.entities.tool import ToolConfiguration, ToolProviderConfiguration
    from dify_plugin.interfaces.tool import Tool, ToolProvider
    from pydantic import ValidationError

    raw_manifest = _load_yaml(plugin_dir, "manifest.yaml")
    problems = [f"manifest.yaml: {gap}" for gap in _i18n_gaps(raw_manifest, "manifest")]
    try:
        manifest = PluginConfiguration(**raw_manifest)
    except ValidationError as exc:
        raise PluginError(f"manifest.yaml: {exc}") from exc
    icons = [manifest.icon] + ([manifest.icon_dark] if manifest.icon_dark else [])
    entry = f"{manifest.meta.runner.entrypoint}.py"
    needed = ["README.md", "requirements.txt", entry, *(f"_assets/{icon}" for icon in icons)]
    if raw_manifest.get("privacy"):
        needed.append(str(raw_manifest["privacy"]))
    if not manifest.plugins.tools:
        problems.append("manifest.yaml declares no tool provider")

    for declaration in manifest.plugins.tools:
        raw = _load_yaml(plugin_dir, declaration)
        problems += [f"{declaration}: {gap}" for gap in _i18n_gaps(raw, "provider")]
        for tool_file in raw.get("tools") or []:
            tool_raw = _load_yaml(plugin_dir, tool_file)
            problems += [f"{tool_file}: {gap}" for gap in _i18n_gaps(tool_raw, "tool")]
            try:  # the provider loads these too; alone, the error names the tool's file
                ToolConfiguration(**tool_raw)
            except ValidationError as exc:
                raise PluginError(f"{tool_file}: {exc}") from exc
        try:
            provider = ToolProviderConfiguration(**raw)
        except (ValidationError, ValueError) as exc:
            raise PluginError(f"{declaration}: {exc}") from exc
        needed.append(f"_assets/{provider.identity.icon}")
        sources = [(provider.extra.python.source, ToolProvider)]
        sources += [(tool.extra.python.source, Tool) for tool in provider.tools]
        names = [tool.identity.name for tool in provider.tools]
        if len(set(names)) != len(names):
            problems.append(f"{declaration}: tool names repeat: {names}")
        for source, parent in sources:
            if not (plugin_dir / source).is_file():
                problems.append(f"{declaration}: {source} does not exist")
                continue
            try:
                load_single_subclass_from_source(
                    module_name=source.removesuffix(".py").replace("/", "."),
                    script_path=str(plugin_dir / source),
                    parent_type=parent,
                )
            except Exception as exc:
                problems.append(f"{source}: no single {parent.__name__} subclass ({exc})")

    problems += [
        f"{name} is named but does not exist"
        for name in needed
        if not (plugin_dir / name).is_file()
    ]
    if problems:
        raise PluginError("\n".join(problems))
    return raw_manifest


def build(plugin_dir: Path, out_dir: Path) -> dict[str, Any]:
    manifest = validate(plugin_dir)
    files = package_files(plugin_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    package = out_dir / f"{manifest['name']}-{manifest['version']}.difypkg"
    with zipfile.ZipFile(package, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (plugin_dir / name).read_bytes())
    identity = f"{manifest['author']}/{manifest['name']}:{manifest['version']}"
    return {
        "package": str(package),
        "identifier": f"{identity}@{checksum(plugin_dir, files)}",
        "files": files,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--plugin", type=Path, default=PLUGIN_DIR, help="the plugin folder")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the .difypkg goes")
    args = parser.parse_args(argv)
    try:
        result = build(args.plugin.resolve(), args.out.resolve())
    except PluginError as exc:
        print(f"the plugin is not valid:\n{exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK monkey-patches threading with gevent on import; a normal interpreter exit then
    # prints harmless "greenlet is being finalized" noise from logging's clean-up.
    os._exit(code)
