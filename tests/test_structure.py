"""The package's shape: dependencies point one way, from the CLI down to the models, with no circles.

Every ``import agecompact.…`` counts, also the lazy ones inside functions (they are real dependencies,
deferred only for start-up time). A unit is a top-level module or sub-package of ``agecompact``; a unit may
import only units listed *before* it in ``LAYERS`` (and itself).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "agecompact"

# lowest first; each line may use the lines above it
LAYERS = [
    "_version", "errors", "choices", "envinfo", "fieldtypes", "batching", "console", "fileio", "zoo", "paths", "runfolder",  # foundations
    "synthetic_faces",  # the demo generator's faces (numpy only): demo data and int8 calibration
    "models",       # Flax definitions and their registry
    "weights",      # the model file format, Keras import
    "pretrained",   # released-weights registry (names, URLs, licences)
    "api",          # AgeModel / load_model
    "export",       # ONNX graphs, int8, opening onnxruntime sessions
    "inference",    # engines: JAX, onnxruntime, int8, flip TTA
    "faces",        # detection and crops
    "data",         # datasets: filter, preprocess, the .npz reader, demo data
    "fetch",        # sources, downloads, released weights and detectors into the cache
    "predict",      # photos -> faces -> ages
    "evaluation",   # metrics, eval on chips and through predict
    "plotting",
    "training",
    "bench",
    "serve",
    "cli", "__main__", "__init__",  # entry points
]


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[str, set[str]]:
    """module -> the agecompact modules it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        module = ".".join(parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = parts if is_pkg else parts[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[module] |= {n for n in names if n == "agecompact" or n.startswith("agecompact.")}
    return graph


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").is_file())}
    assert units - set(LAYERS) == set(), "add new modules/packages to LAYERS"


def test_imports_only_point_down():
    rank = {u: i for i, u in enumerate(LAYERS)}
    wrong = []
    for module, targets in _imports().items():
        for target in targets:
            src, dst = _unit(module), _unit(target)
            if src != dst and rank[dst] >= rank[src]:
                wrong.append(f"{module} imports {target} ({dst} is not below {src})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles_between_modules():
    graph = _imports()
    modules = set(graph) | {t for ts in graph.values() for t in ts}

    def resolve(name: str) -> str:  # ``from agecompact.x import y`` names the module x (or x.y)
        return name if name in modules else name.rsplit(".", 1)[0]

    edges = {m: {resolve(t) for t in graph.get(m, ())} - {m} for m in modules}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue  # a package and its own modules (``__init__`` re-exports)
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(modules):
        if m not in state and (cycle := visit(m)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


# modules allowed past ~400 lines, each with the reason (also written at the module's top)
LONG_MODULES = {
    "training/loop.py": "the Trainer's steps share the state they advance",
}


def test_modules_stay_small_or_say_why():
    long = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {k: n for k, n in long.items() if n > 400}
    assert set(long) <= set(LONG_MODULES), f"split these (or give a reason in LONG_MODULES): {long}"
    for name in long:
        doc = ast.get_docstring(ast.parse((PACKAGE / name).read_text())) or ""
        assert "lines" in doc, f"{name}: say at its top why it is long"
