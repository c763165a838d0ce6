"""The package's shape: no import cycles (function-level imports counted), no private name imported from another
subpackage, no module over 400 lines and no function over 80."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mdeblur_cli"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = ["mdeblur_cli", *p.relative_to(PKG).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(target module, imported name or None) for every import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mdeblur_cli"):
                    yield a.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("mdeblur_cli"):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                yield (sub, None) if sub in modules else (target, a.name)


def _graph():
    modules = _modules()
    return {m: {t for t, _ in _imports(m, p, modules) if t in modules and t != m} for m, p in modules.items()}


def test_no_import_cycles_even_through_function_level_imports():
    graph = _graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_cycle(tmp_path, monkeypatch):
    """The cycle test can fail: two modules that import each other inside functions are found."""
    global PKG
    pkg = tmp_path / "mdeblur_cli"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("def g():\n    from . import a\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PKG"]), "PKG", pkg)
    graph = _graph()
    assert "mdeblur_cli.b" in graph["mdeblur_cli.a"] and "mdeblur_cli.a" in graph["mdeblur_cli.b"]


def _subpackage(module: str, modules: dict[str, Path]) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and modules[module].name == "__init__.py"):
        return parts[1]
    return ""  # the top-level modules share the root


def test_no_private_names_imported_across_subpackages():
    modules = _modules()
    bad = [f"{m} imports {t}.{n}" for m, p in modules.items() for t, n in _imports(m, p, modules)
           if n and n.startswith("_") and not n.startswith("__") and _subpackage(t, modules) != _subpackage(m, modules)]
    assert not bad, bad


def test_modules_and_functions_stay_small():
    big, long = [], []
    for m, p in _modules().items():
        text = p.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{m}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{m}.{node.name}: {n} lines")
    assert not big and not long, big + long
