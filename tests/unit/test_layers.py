"""Dependencies point down: front ends -> scenarios -> engine (and the servers) -> results ->
http -> errors. A module imports only from its own package or from a lower layer; the check
reads every import statement, including those inside functions and TYPE_CHECKING blocks."""

import ast
from pathlib import Path

import hubstress_ext

ROOT = Path(hubstress_ext.__file__).parent
BENCHMARKS = ROOT.parent / "benchmarks"
LAYERS = {
    "cli": 5,
    "notebook": 5,
    "hub": 4,
    "loadgen": 4,
    "capacity": 4,
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


def module_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (any import: in functions, TYPE_CHECKING).
    The benchmarks import each other by file name (their folder is on ``sys.path``)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in BENCHMARKS.glob("*.py"):
        modules[f"benchmarks.{path.stem}"] = path
    graph = {}
    for name, path in modules.items():
        deps = set()
        for _, module in imports(path):
            for candidate in (module, f"benchmarks.{module}"):
                if candidate in modules:
                    deps.add(candidate)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # from hubstress_ext.engine import registry: a module too
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {f"{node.module}.{a.name}" for a in node.names} & set(modules)
        deps.discard(name)
        graph[name] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected groups of more than one module), Tarjan's way."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_inside_a_package_or_among_the_benchmarks():
    graph = module_graph()
    assert "hubstress_ext.engine.registry" in graph and "benchmarks.batching" in graph
    # a package's __init__ re-exports its modules: that is its facade, not a circle
    for name in list(graph):
        if (ROOT / Path(*name.split(".")[1:]) / "__init__.py").exists():
            graph[name] = set()
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_readme_diagram_shows_every_folder_in_its_layer():
    """The README's picture of the layers is the table above, read from the README."""
    import re

    text = (ROOT.parent / "README.md").read_text().split("<!-- layers -->", 1)[1]
    block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    shown, layer = {}, None
    for line in block.splitlines()[1:]:
        number = re.match(r"^ (\d) ", line)
        layer = int(number.group(1)) if number else layer
        folder = re.search(r" (\w+)(?:/|\.py) ", line[:40])
        if folder:
            shown[folder.group(1)] = layer
    assert shown == LAYERS


def test_the_engine_holds_only_what_every_scenario_shares():
    """The hub's options, its environment variables and its figures are the hub's: the engine
    names none of them (a scenario declares what the engine asks: ``before_command``,
    ``optional_figures``)."""
    from hubstress_ext.engine import options

    here = options.__name__
    classes = {n for n, v in vars(options).items() if isinstance(v, type) and v.__module__ == here}
    assert classes == {"Options", "RunOptions", "ShardOptions"}
    hub_words = ("HubOptions", "JUPYTERHUB", '"hub."', 'options, "sandbox"', "hub.options")
    for path in sorted((ROOT / "engine").glob("*.py")):
        text = path.read_text()
        assert not [w for w in hub_words if w in text], path.name
