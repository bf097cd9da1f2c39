"""What an image can import: modules imported in a fresh interpreter with some libraries made
unimportable, as if the image lacked them."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_without(
    modules: Iterable[str], blocked: Iterable[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``import`` each of ``modules`` with every name in ``blocked`` set to None in sys.modules
    (so importing it raises ImportError); prints ``ok`` when all imported."""
    names = ", ".join(repr(name) for name in blocked)
    code = (
        f"import sys\nfor name in ({names},):\n    sys.modules[name] = None\n"
        f"import {', '.join(modules)}\nprint('ok')\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)


def package_modules(package: Path) -> list[str]:
    """The dotted names of every module in a package folder, the package itself included."""
    root = package.parent
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every absolute import in a source file, nested ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
