"""The package's modules import one way: a lower module never imports a higher one."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "imdb_sentiment"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, function-local imports included."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph = {}
    for path in PACKAGE.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                if node.level == 1 and name:
                    deps.add(name.split(".")[0])
                elif node.level == 1:
                    deps |= {alias.name for alias in node.names}
                elif name.startswith("imdb_sentiment."):
                    deps.add(name.split(".")[1])
                elif name == "imdb_sentiment":
                    deps |= {alias.name for alias in node.names}
        graph[path.stem] = deps & modules - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep, path + [dep])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_no_import_cycle_among_the_package_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_model_never_depends_on_the_baseline():
    graph = import_graph()
    seen, todo = set(), ["model"]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    assert "baseline" not in seen


def test_the_readme_lists_every_module_below_the_ones_it_imports():
    """README's "How the code is laid out" table is kept true: every module is in it, after every
    module it imports."""
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    section = readme.split("### How the code is laid out", 1)[1].split("\n## ", 1)[0]
    order = []
    for line in section.splitlines():
        if line.startswith("| `"):
            order += [name.strip(" `") for name in line.split("|")[1].split(",")]
    graph = import_graph()
    assert sorted(order) == sorted(m for m in graph if m != "__init__")
    for module, deps in graph.items():
        for dep in deps:
            assert order.index(dep) < order.index(module), (
                f"{module} imports {dep}, listed below it"
            )
