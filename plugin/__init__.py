"""FiftyOne entry point of ram-annotate (named as `py_entry` in the repository's fiftyone.yml).

FiftyOne executes this file under a synthetic module name, so the operators are imported
by their absolute `plugin.*` names; the repository root is made importable first, for the
case where the repository sits in FIFTYONE_PLUGINS_DIR without being pip-installed.
"""
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)


def register(p):
    """Register every operator, in the order fiftyone.yml lists them."""
    from plugin.operators import OPERATORS

    for operator_cls in OPERATORS:
        p.register(operator_cls)
