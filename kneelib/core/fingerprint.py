"""Which source files a module depends on, found from the code itself: the closure of its ``kneelib`` imports.

The run key of a trained net (``kneelib.nets.train.run_key``) hashes every source file of the training
path. Finding those files by reading the imports, rather than keeping a list, means a new reader or a
moved function cannot silently fall out of the key. Imports inside functions count too: they run on the
training path all the same.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "kneelib"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of ``module`` (``"kneelib.nets.run"`` -> ``<package_dir>/nets/run.py``; a package
    -> its ``__init__.py``), or None when ``module`` names no module (e.g. a function imported from one)."""
    base = package_dir.joinpath(*module.split(".")[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted ``kneelib`` name that ``path`` (the source of ``module``) imports, at any depth of its
    code: ``from kneelib.core import paths`` gives ``kneelib.core`` and ``kneelib.core.paths``."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package[:len(package) - node.level + 1] if node.level else []
            prefix = ".".join(anchor + ([node.module] if node.module else []))
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def source_closure(entry: str, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files Python runs when it imports ``entry``: the module, every ``kneelib`` module it
    imports directly or indirectly, and the ``__init__.py`` of every package on the way. Sorted."""
    if module_file(entry, package_dir) is None:
        raise ValueError(f"{entry!r} is not a module of {package_dir}")
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b.c runs a and a.b first
        path = module_file(module, package_dir)
        if path is not None:
            files.add(path)
            todo.extend(imported_names(path, module))
    return sorted(files)


def code_of(path: Path) -> bytes:
    """The code of the source file ``path``: its syntax tree, printed, without docstrings (and so without
    comments, which the tree never holds)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def source_fingerprint(entry: str, package_dir: Path = PACKAGE_DIR) -> str:
    """A 16-hex-digit hash of the paths and the code (:func:`code_of`) of :func:`source_closure` ``(entry)``."""
    h = hashlib.sha256()
    for path in source_closure(entry, package_dir):
        h.update(path.relative_to(package_dir).as_posix().encode() + b"\0" + code_of(path) + b"\0")
    return h.hexdigest()[:16]
