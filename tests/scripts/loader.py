"""Import a file of ``scripts/`` as a module, as the script itself would run: its folder on
``sys.path`` (scripts import their sibling ``scripts_common``) and the module registered in
``sys.modules`` (dataclasses look their module up there)."""
from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts")


def load_script(filename: str) -> ModuleType:
    if SCRIPTS not in sys.path:
        sys.path.insert(0, SCRIPTS)
    name = "radground_script_" + os.path.splitext(filename)[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(SCRIPTS, filename))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
