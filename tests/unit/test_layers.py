"""Dependencies point down: front ends -> scenarios -> engine (and the servers) -> results ->
http -> errors. A module imports only from its own package or from a lower layer; the check
reads every import statement, including those inside functions and TYPE_CHECKING blocks."""

import ast
from pathlib import Path

import hubstress_ext

ROOT = Path(hubstress_ext.__file__).parent
LAYERS = {
    "cli": 5,
    "notebook": 5,
    "hub": 4,
    "loadgen": 4,
    "engine": 3,
    "sandbox": 3,
    "batching": 3,
    "results": 2,
    "http": 1,
    "cluster": 1,
    "errors": 0,
    "version": 0,
}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "hubstress_ext" or len(parts) < 2:
        return None
    return parts[1]


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "hubstress_ext":  # from hubstress_ext import results / __version__
                out += [(node.lineno, f"hubstress_ext.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def test_every_import_points_down_or_stays_in_its_package():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        here = rel.parts[0].removesuffix(".py")
        if here not in LAYERS:  # the package's own __init__ / __main__: the public facade
            continue
        for line, module in imports(path):
            there = package_of(module)
            if there is not None and there not in LAYERS and module.count(".") == 1:
                # a name of the package root (its public facade, above every layer)
                wrong.append(f"{rel}:{line} ({here}) imports {module} from the package's facade")
                continue
            if there is None or there == here or there not in LAYERS:
                continue
            if LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{rel}:{line} ({here}) imports {module} ({there})")
    assert not wrong, "imports pointing up or sideways:\n" + "\n".join(wrong)


def test_every_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), packages - set(LAYERS)
