"""The package's layers: ``data`` imports none of the packages above it."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "speechbrain_ext"
ABOVE_DATA = ("scoring", "training", "augment", "lobes")


def _imports(path):
    """(line, module, names) of every import in a file, nested ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _package_of(module):
    """``speechbrain_ext.<package>`` part of a module name, or None."""
    parts = module.split(".")
    if parts[0] != "speechbrain_ext" or len(parts) < 2:
        return None
    return parts[1]


def test_data_imports_nothing_above_it():
    upward = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in sorted((PACKAGE / "data").rglob("*.py"))
        for line, module, _ in _imports(path)
        if _package_of(module) in ABOVE_DATA
    ]
    assert not upward, "data imports from a higher layer:\n" + "\n".join(
        upward
    )


def test_no_private_name_imported_across_packages():
    shared = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = path.relative_to(PACKAGE).parts
        here = here[0] if len(here) > 1 else None
        for line, module, names in _imports(path):
            there = _package_of(module)
            if there is None or there == here:
                continue
            shared += [
                f"{path.relative_to(PACKAGE.parent)}:{line}: {module}.{n}"
                for n in names
                if n.startswith("_")
            ]
    assert not shared, "private names shared across packages:\n" + "\n".join(
        shared
    )
