"""The documentation: the API reference builds without warnings, the public API is documented
(numpy-style sections, units, examples that run), and the repository cites only what it holds.

References: the generated HTML of ``mkdocs build --strict`` (mkdocs + mkdocstrings[python], the
``test`` extra); the docstring examples are executed by :mod:`doctest` (those that need the
public model tables or a full engine run are marked ``+SKIP``); the citation checks read the
files themselves.
"""

from __future__ import annotations

import doctest
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fragility
import hra
import hra.gmm

ROOT = Path(__file__).resolve().parents[1]

#: The public API: hra.__all__ plus the two model loaders (docs/architecture.md §4).
PUBLIC = {f"hra.{n}": n for n in hra.__all__} | {"hra.gmm.load_gmm": "load_gmm", "fragility.load_fcm": "load_fcm"}


def _public_objects() -> dict[str, object]:
    objs = {f"hra.{n}": getattr(hra, n) for n in hra.__all__ if n != "__version__"}
    objs["hra.gmm.load_gmm"] = hra.gmm.load_gmm
    objs["fragility.load_fcm"] = fragility.load_fcm
    return objs


# ------------------------------------------------------------------------------------------
# the API reference
# ------------------------------------------------------------------------------------------


def test_api_reference_builds_strict_and_lists_every_public_name(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    html = (site / "api.html").read_text(encoding="utf-8")
    for full in PUBLIC:
        assert f'id="{full}"' in html, f"{full} has no entry in the generated API reference"
    # the numpy sections are rendered, not left as raw text
    for section in ("Parameters", "Returns", "Examples"):
        assert section in html
    # every topic page of docs/ is in the navigation and was built
    for md in sorted((ROOT / "docs").glob("*.md")):
        assert (site / (md.stem + ".html")).is_file(), md.name


def test_mkdocs_and_mkdocstrings_are_in_the_test_extra():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    test_extra = re.search(r"^test = \[(.*?)^\]", text, re.S | re.M).group(1)
    assert re.search(r'"mkdocs>=', test_extra) and re.search(r'"mkdocstrings\[python\]>=', test_extra)


# ------------------------------------------------------------------------------------------
# docstrings of the public API
# ------------------------------------------------------------------------------------------


def _section(doc: str, title: str) -> str | None:
    m = re.search(rf"^{title}\n-{{{len(title)}}}\n(.*?)(?=^\S[^\n]*\n-{{3,}}\n|\Z)", doc, re.S | re.M)
    return m.group(1) if m else None


def _parameter_entries(section: str) -> dict[str, str]:
    """name -> description of a numpy 'Parameters' section (``x_rd, y_rd`` documents both)."""
    entries: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        if line and not line[0].isspace():
            names = [n.strip().lstrip("*") for n in line.split(":")[0].split(",")]
            for n in names:
                entries[n] = ""
        elif names:
            for n in names:
                entries[n] += line.strip() + " "
    return entries


@pytest.mark.parametrize("name", sorted(_public_objects()))
def test_public_docstring_is_complete(name):
    obj = _public_objects()[name]
    doc = inspect.cleandoc(obj.__doc__ or "")
    assert doc, f"{name} has no docstring"
    examples = _section(doc, "Examples")
    assert examples and ">>> " in examples, f"{name}: no Examples section with doctest lines"
    if inspect.isclass(obj):
        return
    params = _section(doc, "Parameters")
    assert params is not None, f"{name}: no Parameters section"
    assert _section(doc, "Returns") is not None, f"{name}: no Returns section"
    entries = _parameter_entries(params)
    sig = inspect.signature(obj)
    for p in sig.parameters.values():
        key = p.name
        assert key in entries, f"{name}: parameter {key!r} is not documented"
        ann = str(p.annotation)
        if re.search(r"\b(float|int)\b", ann) and "bool" not in ann:
            # a numeric parameter states its unit in brackets ([km], [g], [ML], [-] ...)
            assert re.search(r"\[[^\]]+\]", entries[key]), f"{name}: parameter {key!r} gives no unit in brackets"


@pytest.mark.parametrize("name", sorted(_public_objects()) + ["hra"])
def test_public_docstring_examples_run(name, tmp_path, monkeypatch):
    """The examples that need neither the model tables nor a full engine run are executed."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' temporary folders go here
    obj = hra if name == "hra" else _public_objects()[name]
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs={})
    assert tests and tests[0].examples
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed (see the output above)"


def test_lazy_public_names_resolve_and_match_their_modules():
    from hra.api import building_lpr, demo_config, run
    from hra.integration.conditional import conditional_risk
    from hra.integration.hazard import hazard_curves

    assert (hra.run, hra.demo_config, hra.building_lpr) == (run, demo_config, building_lpr)
    assert hra.conditional_risk is conditional_risk and hra.hazard_curves is hazard_curves
    assert isinstance(hra.__version__, str) and hra.__version__
    assert set(hra.gmm.__all__) == {"load_gmm"} and set(fragility.__all__) == {"load_fcm"}
    with pytest.raises(AttributeError):
        hra.not_a_public_name  # noqa: B018


def test_load_gmm_builds_the_closed_form_models_by_name():
    """``load_gmm`` finds "parametric" and "demo" without importing their modules first."""
    import numpy as np

    gmm = hra.gmm.load_gmm("parametric", c0=-5.0, c1=1.2, c2=-1.5, c3=-0.01, tau=0.3, phi=0.4)
    mix = gmm.ln_im_mixture("PGA", np.array([4.0]), np.array([8.0]), 1, {})
    # hand computation: ln IM = c0 + c1 M + c2 ln R + c3 R, sigma = sqrt(tau^2 + phi^2)
    assert float(mix.mean.ravel()[0]) == pytest.approx(-5.0 + 4.8 - 1.5 * np.log(8.0) - 0.08, rel=1e-12)
    assert float(mix.sd.ravel()[0]) == pytest.approx(0.5, rel=1e-12)
    assert hra.gmm.load_gmm("demo").name == "demo"
    with pytest.raises(KeyError, match="available"):
        hra.gmm.load_gmm("no-such-model")


# ------------------------------------------------------------------------------------------
# the repository cites only what it holds
# ------------------------------------------------------------------------------------------

#: Documents outside the repository that code and docs must not cite (written in pieces so that
#: this file does not match itself).
_OUTSIDE = re.compile(
    "|".join([
        r"design" + r"\.md", r"\bdesign ?§",
        r"model-" + r"spec(?!ific)",
        r"conventions" + r"\.md", r"\bconventions ?§",
        r"openquake-" + r"peer",
        r"\.\./" + r"shared",
    ])
)
_SEARCHED = ("hra", "fragility", "npr9998", "tests", "benchmarks", "notebooks", "docs")
_TEXT = {".py", ".md", ".ipynb", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".ini", ".json", ".csv", ".rst"}


def _repository_text_files():
    files = [ROOT / "README.md", ROOT / "mkdocs.yml", ROOT / "pyproject.toml"]
    for top in _SEARCHED:
        for p in sorted((ROOT / top).rglob("*")):
            if p.is_file() and p.suffix in _TEXT and "__pycache__" not in p.parts and p.stat().st_size < 5_000_000:
                files.append(p)
    return files


def test_no_file_cites_documents_outside_the_repository():
    hits = []
    for p in _repository_text_files():
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if _OUTSIDE.search(line):
                hits.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()[:120]}")
    assert not hits, "cite docs/*.md instead:\n" + "\n".join(hits)


def test_outside_citation_pattern_catches_the_forms_used_before():
    for bad in ("(design" + ".md §4)", "model-" + "spec §3.2", "``shared/model-" + "spec.md`` §3", "conventions" + " §12",
                "(conventions" + ".md §13)", "``shared/openquake-" + "peer.md`` §5", "`../" + "shared/x`"):
        assert _OUTSIDE.search(bad), bad
    for fine in ("model-specific kernels", "docs/model-chain.md §3", "docs/architecture.md §4.1"):
        assert not _OUTSIDE.search(fine), fine


_CITATION = re.compile(r"docs/([\w-]+\.md)(?: (§\d+(?:\.\d+)?(?: and §\d+(?:\.\d+)?)?))?")


def _headings(md: Path) -> set[str]:
    out = set()
    for line in md.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{2,4} (\d+(?:\.\d+)?)\.? ", line)
        if m:
            out.add(m.group(1))
    return out


def test_citations_of_docs_point_at_existing_pages_and_sections():
    bad = []
    for p in _repository_text_files():
        text = p.read_text(encoding="utf-8", errors="replace")
        for m in _CITATION.finditer(text):
            page = ROOT / "docs" / m.group(1)
            if not page.is_file():
                bad.append(f"{p.relative_to(ROOT)}: {m.group(0)} (no such page)")
                continue
            for sec in re.findall(r"§(\d+(?:\.\d+)?)", m.group(2) or ""):
                if sec not in _headings(page):
                    bad.append(f"{p.relative_to(ROOT)}: {m.group(0)} (no section {sec})")
    assert not bad, "\n".join(bad)


def test_readme_links_to_docs_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link
    for page in ("architecture.md", "lpr.md", "model-chain.md", "nomenclature.md", "api.md"):
        assert f"docs/{page}" in text, f"README does not link docs/{page}"


# ------------------------------------------------------------------------------------------
# the import rule of docs/architecture.md §1
# ------------------------------------------------------------------------------------------

#: Layers from the bottom up, as docs/architecture.md §1 lists them.
LAYERS = {
    "hra.core": 0, "hra.inputs": 1, "hra.gmm": 2, "fragility": 2, "hra.demo": 3, "hra.config": 4, "hra.chain": 4,
    "hra.outputs": 5, "hra.integration": 6, "hra.eventbased": 6, "hra.policy": 7, "hra.review": 8, "hra.openquake": 8,
    "hra.api": 9, "hra": 9, "hra.cli": 10, "npr9998": 11,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    for n in (2, 1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    return None


def test_imports_only_go_down_the_layers():
    import ast

    bad = []
    for top in ("hra", "fragility", "npr9998"):
        for f in sorted((ROOT / top).rglob("*.py")):
            module = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            mine = _layer(module)
            assert mine is not None, f"{module} is in no layer of docs/architecture.md §1"
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    other = _layer(name)
                    if other is not None and other > mine:
                        bad.append(f"{module} imports {name} (line {node.lineno})")
    assert not bad, "imports going up the layers:\n" + "\n".join(bad)


def test_docs_name_only_modules_and_objects_that_exist():
    """Every dotted ``hra.`` / ``fragility.`` / ``npr9998.`` name in the README and docs/ resolves."""
    import importlib

    names: set[tuple[str, str]] = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"`((?:hra|fragility|npr9998)(?:\.[A-Za-z_]\w*)+)", text):
            names.add((page.name, m.group(1)))
        for m in re.finditer(r"^from ((?:hra|fragility|npr9998)[\w.]*) import ([\w, ]+)$", text, re.M):
            names.update((page.name, f"{m.group(1)}.{n.strip()}") for n in m.group(2).split(","))
    assert names
    missing = []
    for page, name in sorted(names):
        parts = name.split(".")
        obj, rest = None, parts
        for i in range(len(parts), 0, -1):
            try:
                obj, rest = importlib.import_module(".".join(parts[:i])), parts[i:]
                break
            except ModuleNotFoundError as exc:
                if exc.name and not exc.name.startswith(("hra", "fragility", "npr9998")):
                    obj = "optional"  # needs a package outside this project (openquake)
                    break
        if obj == "optional":
            continue
        try:
            for attr in rest:
                obj = getattr(obj, attr)
        except AttributeError:
            missing.append(f"{page}: {name}")
    assert not missing, "\n".join(missing)
