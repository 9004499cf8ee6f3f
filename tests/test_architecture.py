"""The package's shape (issue 16), measured by tools/architecture_metrics.py: each assertion is a
target the tree reaches today, so a change that breaks one fails here instead of in review."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location(
        "architecture_metrics", ROOT / "tools" / "architecture_metrics.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def metrics():
    return _tool().measure(ROOT / "facenet")


def test_tool_measures_a_toy_package(tmp_path):
    """The tool itself: a module over the limit, a long function, a missing docstring and a
    lazy-import cycle are all found."""
    tool = _tool()
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text('from .a import f\n__all__ = ["f"]\n')
    long_body = "\n".join(f"    x{i} = {i}" for i in range(70))
    (package / "a.py").write_text(
        f'def f():\n    """Doc."""\n    from .b import g\n{long_body}\n    return g\n'
    )
    (package / "b.py").write_text("from .a import f\n\n\ndef g():\n    return f\n" + "# c\n" * 5)
    (package / "big.py").write_text(
        "\n".join(f"v{i} = {i}" for i in range(tool.MODULE_LIMIT + 1)) + "\n"
    )
    found = tool.measure(package)
    assert found.modules == 4
    assert found.long_modules == {"toy/big.py": tool.MODULE_LIMIT + 1}
    assert list(found.long_functions) == ["toy/a.py:f"]
    assert found.exports == ["f"]
    assert (found.public_names, found.documented, found.undocumented) == (2, 1, ["toy/b.py:g"])
    assert found.import_cycles == [["toy.a", "toy.b"]]
    assert tool.code_lines(textwrap.dedent("a = 1\n\n# only a comment\n  b = 2  # trailing\n")) == 2


def test_top_level_exports_stay_small(metrics):
    assert len(metrics.exports) <= 12, metrics.exports


def test_no_import_cycles(metrics):
    assert metrics.import_cycles == []


def test_public_names_are_documented(metrics):
    assert metrics.docstring_coverage >= 0.8, metrics.undocumented


def test_modules_stay_under_400_code_lines(metrics):
    assert metrics.long_modules == {}


def test_few_long_functions_and_none_in_the_user_facing_layers(metrics):
    """At most 5 functions over 60 lines (4 today), none in api, cli, server or gallery."""
    assert len(metrics.long_functions) <= 4, metrics.long_functions
    facing = ("facenet/api.py", "facenet/cli/", "facenet/server/", "facenet/gallery/")
    assert [name for name in metrics.long_functions if name.startswith(facing)] == []


def test_print_table(capsys):
    """`python tools/architecture_metrics.py` prints the table the closing note quotes."""
    assert _tool().main([str(ROOT / "facenet")]) == 0
    out = capsys.readouterr().out
    assert "import cycles" in out and "docstring coverage" in out
