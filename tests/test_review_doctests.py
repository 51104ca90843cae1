"""Runs the doctests of the review core and checks that it stays NumPy-only."""

from __future__ import annotations

import ast
import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REVIEW_DIR = Path(__file__).resolve().parents[1] / "ram_model" / "review"
MODULES = sorted(p.stem for p in REVIEW_DIR.glob("*.py") if p.stem != "__init__")
ALLOWED_THIRD_PARTY = {"numpy", "yaml"}


@pytest.mark.parametrize("module", MODULES)
def test_doctests(module: str) -> None:
    mod = importlib.import_module(f"ram_model.review.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_public_functions_carry_examples() -> None:
    import ram_model.review as review

    with_examples = {name for name in review.__all__ if ">>>" in (getattr(review, name).__doc__ or "")}
    for name in (
        "normalize_tag",
        "build_label_mapping",
        "find_disagreements",
        "rank_for_review",
        "select_review_batch",
        "build_finetune_records",
        "atomic_write_json",
        "tune_thresholds",
    ):
        assert name in with_examples


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_stdlib_numpy_yaml(module: str) -> None:
    tree = ast.parse((REVIEW_DIR / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots = {(node.module or "").split(".")[0]}
        else:
            continue
        for root in roots:
            assert root in sys.stdlib_module_names or root in ALLOWED_THIRD_PARTY, f"{module} imports {root}"


def test_review_package_loads_without_torch() -> None:
    """Load ram_model.review under an empty parent package, so ram_model's own (torch) imports do not run."""
    code = (
        "import sys, types; "
        f"pkg = types.ModuleType('ram_model'); pkg.__path__ = [{str(REVIEW_DIR.parent)!r}]; "
        "sys.modules['ram_model'] = pkg; "
        "import ram_model.review as r; "
        "assert r.find_disagreements([{0}], [[0.9]]).sample_scores.shape == (1,); "
        "bad = sorted(m for m in ('torch', 'fiftyone', 'label_studio_sdk', 'fastapi') if m in sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
