"""The documentation site: every public name is on an API reference page with a docstring, and the Python examples
of the README and of every page run.

The site itself is built in strict mode by `.ci/run` (`mkdocs build --strict`: a broken link, anchor or page fails).
"""

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
API = DOCS / "api"

# The public API: the top-level namespace and each subpackage's `__all__`.
PUBLIC_MODULES = ("ttrnn", "ttrnn.store", "ttrnn.data", "ttrnn.formats", "ttrnn.layers", "ttrnn.models",
                  "ttrnn.decompose", "ttrnn.baselines", "ttrnn.features", "ttrnn.cli")
DIRECTIVE = re.compile(r"^::: (\S+)", re.M)
HAND_ANCHOR = re.compile(r"\{ #([\w.]+) \}")
PYTHON_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.M | re.S)


def resolve(path):
    """The object a dotted path names: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def reference():
    """(directives, hand-written anchors) of every API page."""
    directives, anchors = set(), set()
    for page in API.glob("*.md"):
        text = page.read_text()
        directives |= set(DIRECTIVE.findall(text))
        anchors |= set(HAND_ANCHOR.findall(text))
    return directives, anchors


def defined_objects(value):
    return inspect.isclass(value) or inspect.isfunction(value) or inspect.ismodule(value)


def test_every_public_name_is_on_a_reference_page():
    directives, anchors = reference()
    documented = {id(resolve(d)) for d in directives if defined_objects(resolve(d))}
    missing = []
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        for name in module.__all__:
            value = getattr(module, name)
            lazy = getattr(module, "_NAMES", {}).get(name)
            paths = {f"{modname}.{name}"} | ({f"{lazy}.{name}"} if lazy else set())
            if defined_objects(value):
                ok = id(value) in documented
            else:   # a constant: documented under its public path or where it is defined
                ok = bool(paths & (directives | anchors))
            if not ok:
                missing.append(f"{modname}.{name}")
    assert not missing, f"public names on no page of docs/api: {missing}"


def test_reference_pages_are_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {f"api/{p.name}" for p in API.glob("*.md")} | {p.name for p in DOCS.glob("*.md")}
    assert not {p for p in pages if p not in nav}, "pages missing from mkdocs.yml's nav"


def test_every_documented_name_has_a_docstring():
    griffe = pytest.importorskip("griffe")
    directives, _ = reference()
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    for package in ("ttrnn",):
        loader.load(package)
    loader.resolve_aliases(implicit=True, external=False)
    empty = []
    for path in sorted(directives):
        obj = loader.modules_collection.get_member(path)
        if obj.is_alias:
            obj = obj.final_target
        if not (obj.docstring and obj.docstring.value.strip()):
            empty.append(path)
    assert not empty, f"documented without a docstring: {empty}"


def example_pages():
    return [ROOT / "README.md"] + sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", [p for p in example_pages() if PYTHON_BLOCK.search(p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page, tmp_path):
    """The page's ```python blocks, in order, in one fresh process (as a reader pastes them)."""
    blocks = PYTHON_BLOCK.findall(page.read_text())
    script = "\n".join(f"# --- block {i}\n{code}" for i, code in enumerate(blocks))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"{page.name}'s examples failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"


# Measured figures live on the performance page with their command and machine, history in the changelog: the
# other pages say what holds whatever the machine or the day.
DIARY = re.compile(r"\b20\d\d-\d\d-\d\d\b|\b\d\d:\d\d UTC\b|\bEPYC\b|\bXeon\b|\bsession \d|\bissue \d",
                   re.I)


def prose_lines(page):
    """(number, line) of a Markdown page outside code blocks and tables."""
    fenced = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and not line.lstrip().startswith("|"):
            yield number, line


@pytest.mark.parametrize("page", [p for p in example_pages() if p.name != "performance.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_are_no_diary(page):
    dated = [f"{n}: {line}" for n, line in enumerate(page.read_text().splitlines(), 1) if DIARY.search(line)]
    assert not dated, f"dates, machine instances or issue numbers outside the performance page: {dated}"
    long = [n for n, line in prose_lines(page) if len(line) > 120]
    assert not long, f"prose lines over 120 characters: {long}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 220
