"""The package's layout keeps the architecture readable: only ros/ imports rclpy, no module
reaches into another's private names, and the modules import each other without a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "avatar_forcing_ros"


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = (path, ast.parse(path.read_text()))
    return out


def imports(name: str, path: Path, tree: ast.Module):
    """(imported module, imported names) of every import in the file, lazy ones included."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_only_the_ros_subpackage_imports_rclpy():
    offenders = [name for name, (path, tree) in modules().items() if not name.startswith("avatar_forcing_ros.ros")
                 and any(t.split(".")[0] == "rclpy" for t, _ in imports(name, path, tree))]
    assert offenders == []


def test_no_private_name_is_imported_from_another_module():
    found = []
    for name, (path, tree) in modules().items():
        for target, names in imports(name, path, tree):
            if target.startswith("avatar_forcing_ros"):
                found += [f"{name}: {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert found == []


def test_the_package_modules_import_each_other_without_a_cycle():
    mods = modules()
    graph = {}
    for name, (path, tree) in mods.items():
        deps = set()
        for target, names in imports(name, path, tree):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in mods and candidate != name and not name.startswith(candidate + "."):
                    deps.add(candidate)
                    break
        graph[name] = deps
    state, cycle = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycle.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycle == []
