"""ram_model stays importable with torch + numpy + Pillow alone: no integration package is loaded."""
from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("fiftyone", "label_studio_sdk", "fastapi", "starlette", "uvicorn", "torchvision", "timm",
             "backend", "plugin")

CHECK = """
import importlib, pkgutil, sys
import ram_model
for m in pkgutil.walk_packages(ram_model.__path__, "ram_model."):
    if not m.name.endswith(".__main__"):  # `python -m ram_model.cli` would run the command line
        importlib.import_module(m.name)
bad = sorted(n for n in sys.modules if n.split(".")[0] in {forbidden!r})
print(",".join(bad))
"""


def test_ram_model_imports_no_integration_package() -> None:
    proc = subprocess.run([sys.executable, "-c", CHECK.format(forbidden=set(FORBIDDEN))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


CLIENT_CHECK = """
import sys
import ram_client
bad = sorted(n for n in sys.modules if n.split(".")[0] in {"torch", "ram_model", "backend", "fastapi", "plugin",
                                                        "fiftyone", "PIL"})
print(",".join(bad))
"""


def test_ram_client_needs_only_httpx_and_numpy() -> None:
    """Scripts and the FiftyOne plugin talk to a server without installing it (or torch)."""
    proc = subprocess.run([sys.executable, "-c", CLIENT_CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


LS_CLIENT_CHECK = """
import sys
from ram_client.labelstudio.client import LabelStudioClient
LabelStudioClient("http://127.0.0.1:1", "k" * 40).close()  # loads label-studio-sdk's client
bad = sorted(n for n in sys.modules if n.split(".")[0] in {"torch", "ram_model", "backend", "fastapi", "starlette",
                                                        "plugin", "fiftyone"})
print(",".join(bad))
"""


def test_the_label_studio_client_brings_label_studio_sdk_and_no_framework() -> None:
    """The review round's client is label-studio-sdk's: neither it nor the SDK pulls in FastAPI,
    FiftyOne or torch."""
    proc = subprocess.run([sys.executable, "-c", LS_CLIENT_CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_the_plugin_does_not_import_the_server() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys, plugin.models.remote; "
                           "print(','.join(n for n in sys.modules if n.split('.')[0] in ('backend', 'fastapi')))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


# --- the import graph, read from the source (lazy, function-level imports included) ----------------------------
#
# Which package may import which (docs/architecture.md draws the same picture):
#   ram_model   imports only itself (and torch/numpy/Pillow/...): never backend, plugin, ram_client or an integration.
#               Inside it, layers: model <- weights <- text <- inference <- finetune/scale/evidence/grounding <- cli;
#               `review` is NumPy-only and
#               imports no other part; `errors` and `progress` are shared by all.
#   ram_client  imports none of our packages (httpx and numpy only).
#   backend     imports ram_model and ram_client (its Label Studio layer), never plugin or FiftyOne.
#   plugin      imports ram_model and ram_client, never backend (a shared server is reached over HTTP).
# `if TYPE_CHECKING:` blocks are not imports at run time and are skipped.

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ram_model", "ram_client", "backend", "plugin")
MAY_IMPORT = {
    "ram_model": {"ram_model"},
    "ram_client": {"ram_client"},
    "backend": {"backend", "ram_model", "ram_client"},
    "plugin": {"plugin", "ram_model", "ram_client"},
}
FORBIDDEN_THIRD_PARTY = {
    "ram_model": {"fastapi", "starlette", "uvicorn", "pydantic", "fiftyone", "label_studio_sdk", "httpx"},
    "ram_client": {"fastapi", "starlette", "fiftyone", "torch", "PIL"},
    "backend": {"fiftyone"},
    "plugin": {"fastapi", "starlette", "uvicorn"},
}
RAM_MODEL_LAYERS = {  # part -> the parts it may import (besides itself, ram_model.errors, .progress and .option)
    "model": set(),
    "review": set(),
    "weights": {"model", "review"},
    "text": {"model", "weights"},  # CLIP's text encoder: the engine builds open-set views through it
    "inference": {"model", "weights", "text", "review"},
    "finetune": {"model", "weights", "inference", "review"},
    "scale": {"model", "weights", "inference"},
    "evidence": {"model", "weights", "inference", "review"},  # the engine takes a request, never imports it
    "grounding": {"model", "weights", "inference", "review"},
    "cli": {"model", "weights", "text", "inference", "review", "finetune", "scale", "evidence", "grounding"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(module: str, path: Path) -> set[str]:
    """Every module name `module` imports anywhere in its body, resolved to absolute names."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(our module -> our modules it imports, our module -> top-level names of everything it imports)."""
    modules = _modules()
    edges: dict[str, set[str]] = {}
    tops: dict[str, set[str]] = {}
    for module, path in modules.items():
        imported = _imported_names(module, path)
        tops[module] = {name.split(".")[0] for name in imported}
        ours = set()
        for name in imported:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            # a submodule naming its own parent package runs no new code of it: not an edge
            if name and name != module and not module.startswith(name + "."):
                ours.add(name)
        edges[module] = ours
    return edges, tops


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_the_reader_sees_lazy_imports() -> None:
    edges, _ = _graph()
    assert "ram_model.weights.random_preset" in edges["ram_model.weights.hub"]  # imported inside a function


def test_no_module_imports_itself_in_a_circle() -> None:
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_each_package_imports_only_what_it_may() -> None:
    edges, tops = _graph()
    bad = []
    for module, targets in edges.items():
        top = module.split(".")[0]
        bad += [f"{module} -> {t}" for t in targets if t.split(".")[0] not in MAY_IMPORT[top]]
        bad += [f"{module} -> {t}" for t in tops[module] & FORBIDDEN_THIRD_PARTY[top]]
    assert bad == []


def test_ram_model_is_layered() -> None:
    edges, _ = _graph()
    bad = []
    for module, targets in edges.items():
        parts = module.split(".")
        if parts[0] != "ram_model" or len(parts) < 2 or parts[1] not in RAM_MODEL_LAYERS:
            continue
        allowed = RAM_MODEL_LAYERS[parts[1]] | {parts[1], "errors", "progress", "option"}
        for target in targets:
            tparts = target.split(".")
            if len(tparts) > 1 and tparts[1] not in allowed:
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_the_training_worker_never_imports_fastapi() -> None:
    """The worker is a plain process: it must start without the web framework (and fast)."""
    edges, tops = _graph()
    seen, todo = set(), ["backend.training.worker"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += edges[module]
    assert not [m for m in seen if tops[m] & {"fastapi", "starlette", "uvicorn"}]


def test_backend_top_level_stays_small() -> None:
    top = [p.name for p in (REPO / "backend").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()]
    assert len(top) <= 13, sorted(top)  # a dozen modules and subsystems, plus __init__
