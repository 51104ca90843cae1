"""The repository is a FiftyOne plugin: FiftyOne finds it, loads the entry and registers the yml's operators."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import os
import subprocess
import sys
from pathlib import Path

import fo_fixtures
import pytest
import yaml

import fiftyone.operators as foo
import fiftyone.plugins as fop
from fiftyone.plugins.context import build_plugin_contexts

pytestmark = pytest.mark.fiftyone

MANIFEST = yaml.safe_load((fo_fixtures.REPO_ROOT / "fiftyone.yml").read_text())


def _our_context():
    contexts = [c for c in build_plugin_contexts(enabled="all") if c.name == fo_fixtures.PLUGIN_NAME]
    assert len(contexts) == 1, [c.name for c in build_plugin_contexts(enabled="all")]
    return contexts[0]


def test_fiftyone_finds_the_repository_as_a_plugin() -> None:
    definition = fop.get_plugin(fo_fixtures.PLUGIN_NAME)
    assert Path(definition.directory).resolve() == fo_fixtures.REPO_ROOT
    assert definition.has_py
    assert definition.secrets[:2] == ["RAM_ANNOTATE_URL", "RAM_ANNOTATE_AUTH"]
    assert {"LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"} <= set(definition.secrets)


def test_entry_registers_exactly_the_manifest_operators_without_errors() -> None:
    context = _our_context()
    assert context.errors == []
    assert [op.name for op in context.instances] == MANIFEST["operators"]


def test_operators_are_in_fiftyones_registry_with_both_execution_modes() -> None:
    uris = {op.uri: op for op in foo.list_operators(enabled="all") if op.plugin_name == fo_fixtures.PLUGIN_NAME}
    assert sorted(uris) == sorted(f"{fo_fixtures.PLUGIN_NAME}/{name}" for name in MANIFEST["operators"])
    for operator in uris.values():
        assert operator.config.allow_immediate_execution and operator.config.allow_delegated_execution


def test_manifest_pins_the_minimum_fiftyone_version_of_pyproject() -> None:
    pyproject = (fo_fixtures.REPO_ROOT / "pyproject.toml").read_text()
    minimum = MANIFEST["fiftyone"]["version"].removeprefix(">=")
    assert f'"fiftyone>={minimum}"' in pyproject


def test_fiftyone_cli_lists_the_operators() -> None:
    """What a user sees with the repository in FIFTYONE_PLUGINS_DIR: `fiftyone operators list`."""
    cli = Path(sys.executable).with_name("fiftyone")
    proc = subprocess.run([str(cli), "operators", "list"], capture_output=True, text=True, timeout=120, check=False,
                          env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    for name in MANIFEST["operators"]:
        assert f"{fo_fixtures.PLUGIN_NAME}/{name}" in proc.stdout
