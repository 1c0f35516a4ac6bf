"""The emulators are a distribution of their own, never part of the product.

``sandbox/`` holds ``stackstate-key-rotator-sandbox`` (package ``rotator_sandbox``): the StackState,
Vault and Kubernetes emulators the tests, ``rotator sandbox`` and ``rotator demo`` talk to. These
tests hold the line between the two distributions:

- the product's wheel, built with ``pip wheel --no-deps`` from a copy of the whole checkout (so
  ``sandbox/`` and ``tests/`` sit next to ``rotator/`` as they do in a clone), contains neither the
  emulators nor the OpenAPI excerpt; the sandbox's wheel contains every emulator module and
  declares the third-party packages they import;
- the source: ``rotator_sandbox`` imports nothing of ``rotator``; in ``rotator`` only the
  ``sandbox`` and ``demo`` commands import ``rotator_sandbox``, inside the command function;
- without the sandbox installed (hidden from the import system in a subprocess by a meta path
  finder, as if ``pip uninstall`` had run), every module of ``rotator`` still imports, and ``rotator
  sandbox`` / ``rotator demo`` exit 2 with the command that installs it.

``tests/test_container_image.py`` checks the image side: its build context holds ``rotator/`` only
and ``rotator demo`` in the installed image says how to get the emulators.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "rotator"
SANDBOX = ROOT / "sandbox"
SANDBOX_PACKAGE = SANDBOX / "rotator_sandbox"
#: Builds reach PyPI (build isolation); generous but bounded.
PIP_TIMEOUT = 300
COMMAND_TIMEOUT = 60
#: Local state of a checkout that a clean clone does not have.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.py[co]", ".*_cache",
    ".hypothesis", ".coverage", "sandbox-out",
)  # fmt: skip

#: Run in ``python -c``: hide ``rotator_sandbox`` as if it were not installed, then run the CLI
#: with the remaining arguments exactly as the console script does.
WITHOUT_SANDBOX = """
import sys
from importlib.abc import MetaPathFinder


class HideSandbox(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "rotator_sandbox":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, HideSandbox())
sys.modules.pop("rotator_sandbox", None)
"""
RUN_CLI = WITHOUT_SANDBOX + "from rotator.cli import main\nmain(sys.argv[1:])\n"


def build_wheel(source: Path, destination: Path) -> Path:
    """``pip wheel --no-deps`` of the project in ``source``; the one wheel built."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "--quiet",
         "--wheel-dir", str(destination), "."],
        capture_output=True, text=True, timeout=PIP_TIMEOUT, cwd=source, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = destination.glob("*.whl")
    return wheel


def requires_dist(archive: zipfile.ZipFile) -> set[Requirement]:
    """The unconditional ``Requires-Dist`` of a wheel."""
    dist_info = next(n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n)
    metadata = archive.read(f"{dist_info}/METADATA").decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)
    return {Requirement(r) for r in requires if "extra ==" not in r}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout as a fresh clone has it (sandbox/, tests/, bench/ included)."""
    destination = tmp_path_factory.mktemp("checkout") / "stackstate-key-rotator"
    shutil.copytree(ROOT, destination, ignore=NOT_IN_A_CLONE)
    return destination


@pytest.fixture(scope="module")
def names(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The file names inside the product's wheel."""
    wheel = build_wheel(checkout, tmp_path_factory.mktemp("product-wheel"))
    assert wheel.name.startswith("stackstate_key_rotator-")
    return zipfile.ZipFile(wheel).namelist()


@pytest.fixture(scope="module")
def archive(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The sandbox's wheel."""
    wheel = build_wheel(checkout / "sandbox", tmp_path_factory.mktemp("sandbox-wheel"))
    assert wheel.name.startswith("stackstate_key_rotator_sandbox-")
    return zipfile.ZipFile(wheel)


@pytest.mark.slow
class TestProductWheel:
    """``pip wheel --no-deps .`` at the top of the checkout: what operators install."""

    def test_holds_no_emulator(self, names: list[str]) -> None:
        """No ``rotator_sandbox`` package, no ``rotator/sandbox``, no OpenAPI excerpt."""
        assert "rotator/cli/__init__.py" in names  # the wheel is not empty
        assert not [n for n in names if n.startswith(("rotator_sandbox/", "rotator/sandbox/"))]
        assert not [n for n in names if "sandbox" in n.split("/")[0]]
        assert not [n for n in names if n.endswith("stackstate-openapi.yaml")]

    def test_holds_only_the_rotator_package(self, names: list[str]) -> None:
        """Top-level entries: ``rotator`` and the metadata; nothing from tests/ or bench/."""
        tops = {name.split("/")[0] for name in names}
        assert {top for top in tops if not top.endswith(".dist-info")} == {"rotator"}


@pytest.mark.slow
class TestSandboxWheel:
    """``pip wheel --no-deps ./sandbox``: the emulators' own distribution."""

    def test_holds_every_emulator_module(self, archive: zipfile.ZipFile) -> None:
        """Every module of sandbox/rotator_sandbox and the py.typed marker; nothing else."""
        names = archive.namelist()
        modules = {f"rotator_sandbox/{path.name}" for path in SANDBOX_PACKAGE.glob("*.py")}
        assert modules <= set(names)
        assert "rotator_sandbox/py.typed" in names
        tops = {name.split("/")[0] for name in names}
        assert {top for top in tops if not top.endswith(".dist-info")} == {"rotator_sandbox"}
        assert not [n for n in names if n.endswith("stackstate-openapi.yaml")]

    def test_declares_what_the_emulators_import(self, archive: zipfile.ZipFile) -> None:
        """Requires-Dist names the distribution of each third-party import, and only those."""
        distributions = {"yaml": "pyyaml", "cryptography": "cryptography"}
        imported = set()
        for path in SANDBOX_PACKAGE.glob("*.py"):
            imported |= third_party_imports(path)
        assert imported == set(distributions)
        assert {r.name.lower() for r in requires_dist(archive)} == {
            distributions[m] for m in imported
        }


def parse(path: Path) -> ast.Module:
    """The syntax tree of a Python file."""
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """Every absolute module an ``import``/``from ... import`` in ``tree`` names, with its node."""
    found: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, node))
    return found


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports that are neither stdlib nor its own."""
    tops = {name.partition(".")[0] for name, _ in imported_modules(parse(path))}
    return {t for t in tops if t not in sys.stdlib_module_names and t != "rotator_sandbox"}


class TestSource:
    """The imports between the two packages."""

    def test_sandbox_imports_nothing_of_rotator(self) -> None:
        """No module of rotator_sandbox imports ``rotator`` (it must install without it)."""
        offenders = [
            f"{path.name}: {name}"
            for path in sorted(SANDBOX_PACKAGE.glob("*.py"))
            for name, _ in imported_modules(parse(path))
            if name.partition(".")[0] == "rotator"
        ]
        assert offenders == []

    def test_only_sandbox_and_demo_import_it_inside_the_command(self) -> None:
        """In rotator/, rotator_sandbox is imported by the two commands only, in their function."""
        importers: dict[str, set[str]] = {}
        for path in sorted(PRODUCT.rglob("*.py")):
            tree = parse(path)
            functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
            for name, node in imported_modules(tree):
                if name.partition(".")[0] != "rotator_sandbox":
                    continue
                owner = next((f.name for f in functions if node in ast.walk(f)), "<module>")
                importers.setdefault(path.relative_to(ROOT).as_posix(), set()).add(owner)
        assert importers == {
            "rotator/cli/demo.py": {"demo"},
            "rotator/cli/sandbox_cmd.py": {"sandbox"},
        }


def run_without_sandbox(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args`` with ``rotator_sandbox`` hidden from the import system."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=ROOT, check=False,
    )  # fmt: skip


class TestWithoutTheSandbox:
    """The product as operators have it: no emulators installed."""

    def test_the_hiding_works(self) -> None:
        """The subprocess really cannot import rotator_sandbox (else the tests below prove
        nothing)."""
        result = run_without_sandbox(WITHOUT_SANDBOX + "import rotator_sandbox.environment\n")
        assert result.returncode == 1
        assert "No module named 'rotator_sandbox" in result.stderr

    def test_every_rotator_module_imports(self) -> None:
        """Each module of ``rotator`` (but ``__main__``, which runs the CLI) imports without the
        emulators."""
        code = WITHOUT_SANDBOX + (
            "import importlib, pkgutil, rotator\n"
            "names = [m.name for m in pkgutil.walk_packages(rotator.__path__, 'rotator.')\n"
            "         if not m.name.endswith('.__main__')]\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n"
            "print(len(names))\n"
        )
        result = run_without_sandbox(code)
        assert result.returncode == 0, result.stderr
        assert int(result.stdout) > 50

    def test_other_commands_work(self) -> None:
        """``--help`` lists every command; ``config schema`` runs."""
        listing = run_without_sandbox(RUN_CLI, "--help")
        assert listing.returncode == 0, listing.stderr
        assert re.search(r"^\s+sandbox\s", listing.stdout, re.MULTILINE)
        schema = run_without_sandbox(RUN_CLI, "config", "schema")
        assert schema.returncode == 0, schema.stderr

    @pytest.mark.parametrize("command", ["sandbox", "demo"])
    def test_sandbox_commands_exit_2_saying_how_to_install_it(self, command: str) -> None:
        """One line on stderr: what is missing, that it is not on PyPI, and the pip command."""
        result = run_without_sandbox(RUN_CLI, command)
        assert result.returncode == 2
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        message = " ".join(result.stderr.split())
        assert message.startswith(f"error: `rotator {command}` needs the StackState, Vault and")
        assert "stackstate-key-rotator-sandbox" in message
        assert "not on PyPI" in message
        assert "from a checkout of the stackstate-key-rotator repository" in message
        assert "`pip install -e ./sandbox`" in message


def test_sandbox_distribution_is_not_the_product() -> None:
    """Two pyproject files, two names; the product's package finder excludes the sandbox."""
    product = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sandbox = tomllib.loads((SANDBOX / "pyproject.toml").read_text())
    assert product["project"]["name"] != sandbox["project"]["name"]
    assert sandbox["project"]["requires-python"] == ">=3.11"
    assert "rotator_sandbox*" in product["tool"]["setuptools"]["packages"]["find"]["exclude"]
    assert all(
        "sandbox" not in pattern
        for patterns in product["tool"]["setuptools"].get("package-data", {}).values()
        for pattern in patterns
    )
