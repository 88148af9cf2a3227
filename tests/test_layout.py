"""The package's layers: every import goes downward, no module imports itself back through
others, and no front door imports another."""

import ast
from pathlib import Path

import posepipe

PACKAGE = Path(posepipe.__file__).parent

# Lower numbers are lower layers; a module may import from its own layer or those below.
LAYERS = [
    ("errors", "topology", "framework", "float32"),  # framework: MediaPipe's message types, pure Python;
    # float32: MediaPipe's single-precision functions (glibc's expf, atan2f, cosf, sinf)
    ("results", "models"),
    ("roi", "detector", "landmarks", "accurate", "pipeline", "photos", "drawing", "io", "trace", "image"),
    ("video",),
    ("analysis",),
    ("training",),
]
# The front doors stand on everything below and never on each other.
FRONT_DOORS = ("cli", "solutions", "tasks", "batch", "serve")
# The command line is the shell over the front doors that are commands: `posepipe batch` and
# `posepipe serve` parse their options and call posepipe.batch / posepipe.serve, which never
# import the command line (or each other).
COMMAND_LINE_CALLS = {"cli": ("batch", "serve")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str) -> set[str]:
    """posepipe modules ``path`` imports (at any depth of the file), as names under posepipe."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if name else []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "posepipe":
                target = node.module.removeprefix("posepipe").lstrip(".")
            else:
                continue
            for alias in node.names:  # "from . import x" may name a module
                candidate = f"{target}.{alias.name}".lstrip(".")
                found.add(candidate if (PACKAGE / Path(*candidate.split("."))).with_suffix(".py").exists()
                          or (PACKAGE / Path(*candidate.split("."))).is_dir() else target)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("posepipe").lstrip(".") for a in node.names
                      if a.name.split(".")[0] == "posepipe"}
    return {f for f in found if f}


def layer_of(module: str) -> tuple[int, str]:
    top = module.split(".")[0]
    if top in FRONT_DOORS:
        return len(LAYERS), top
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank, top
    raise AssertionError(f"posepipe.{module} is in no layer: add it to LAYERS or FRONT_DOORS")


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, name) for name, path in modules.items() if name}


def test_imports_go_downward_and_front_doors_stay_apart():
    wrong = []
    for module, targets in graph().items():
        rank, door = layer_of(module)
        for target in targets:
            target_rank, target_door = layer_of(target)
            if target_door in COMMAND_LINE_CALLS.get(door, ()):
                continue
            if target_rank > rank or (rank == len(LAYERS) and target_rank == rank and target_door != door):
                wrong.append(f"posepipe.{module} imports posepipe.{target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if target not in edges:  # a package's __init__ is the empty name for the package itself
                continue
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The checker itself: an upward import in a core module is found."""
    core = tmp_path / "roi.py"
    core.write_text("from .video.tracking import PoseTracker\n\ndef f():\n    from .cli import run\n")
    found = imported_modules(core, "roi")
    assert found == {"video.tracking", "cli"}
    assert all(layer_of(t)[0] > layer_of("roi")[0] for t in found)


def test_public_names_resolve_from_the_package_root():
    import importlib

    root = importlib.import_module("posepipe")
    for name in root.__all__:
        value = getattr(root, name)  # imported on first use
        if callable(value):
            assert value.__name__ == name, name
    for name in ("PoseLandmarker", "PoseTracker", "open_source", "run_video", "track_video", "VideoOutputs"):
        assert name in root.__all__
