"""The container image and deployment assets, checked without a Docker engine.

No Docker engine runs on our machines, so the image is checked through its parts:

- the ``Dockerfile`` text (stages, user, entrypoint, labels, environment);
- the build context that ``.dockerignore`` admits, from which the wheel is built exactly as the
  builder stage does (``pip wheel --no-deps``);
- the runtime stage's install step (``requirements.lock`` with ``--require-hashes``, then the
  wheel with ``--no-deps``, then ``pip check``) into a fresh virtual environment made from the
  base interpreter, without the project's ``.venv`` — so the runtime dependencies are exactly the
  locked ones, as in the image, and ``pip check`` proves they cover what the wheel declares
  (pip's download cache makes it quick). What differs from the image: the base OS (not Debian
  slim), ``--no-cache-dir`` is dropped for speed, and the read-only root filesystem is
  approximated by checking that running the commands writes nothing into the installation;
- the installed ``rotator`` run with the image's environment: ``--version``, ``--help``, ``run
  --help``, ``check-config`` of the Helm chart's ConfigMap, the daemon itself against the
  StackState emulator (which runs in the test process: the image has no emulators, and ``rotator
  demo`` there says how to install them);
- the plain YAML under ``deploy/`` (the alert rules). The Helm chart and the systemd units have
  tests of their own under ``tests/deploy/``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from packaging.requirements import Requirement

from rotator.config import ServerSettings
from rotator_sandbox.stackstate import StackStateEmulator

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Install and build steps reach PyPI (build isolation, dependencies); generous but bounded.
PIP_TIMEOUT = 300
#: Any one ``rotator`` command of the installed image.
COMMAND_TIMEOUT = 60
DEADLINE = 45.0


# --- the Dockerfile, parsed ----------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` stage: its base, name and instructions in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        """The arguments of every ``instruction`` in this stage."""
        return [args for name, args in self.instructions if name == instruction]

    def pairs(self, instruction: str) -> dict[str, str]:
        """``KEY=value`` pairs of every ``ENV``/``LABEL``/``ARG`` in this stage, quotes removed."""
        result: dict[str, str] = {}
        for args in self.all(instruction):
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                result[key] = value
        return result


@dataclass
class Dockerfile:
    """The global ``ARG`` defaults and the stages of a Dockerfile."""

    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        """Parse the instructions; comments dropped, backslash continuations joined."""
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        joined = re.sub(r"\\\n", " ", "\n".join(lines))
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for line in joined.splitlines():
            if not line.strip():
                continue
            instruction, _, args = line.strip().partition(" ")
            instruction, args = instruction.upper(), args.strip()
            if instruction == "FROM":
                words = args.split()
                base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
                stages.append(Stage(base, name))
            elif not stages and instruction == "ARG":
                key, _, value = args.partition("=")
                global_args[key] = value
            else:
                stages[-1].instructions.append((instruction, args))
        return cls(global_args, stages)

    @property
    def runtime(self) -> Stage:
        """The final stage: what the image is."""
        return self.stages[-1]


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    """The repository's Dockerfile, parsed."""
    return Dockerfile.parse(DOCKERFILE.read_text())


class TestDockerfile:
    """The Dockerfile's instructions."""

    def test_builds_in_two_stages_on_one_specific_slim_base(self, dockerfile: Dockerfile) -> None:
        """A builder and a runtime stage share one pinned python:3.11 slim tag."""
        assert len(dockerfile.stages) == 2
        bases = {stage.base for stage in dockerfile.stages}
        assert len(bases) == 1
        assert re.fullmatch(r"python:3\.11-slim-[a-z]+", bases.pop())

    def test_builder_makes_only_our_wheel(self, dockerfile: Dockerfile) -> None:
        """The builder runs ``pip wheel --no-deps`` over the copied sources."""
        runs = " ".join(dockerfile.stages[0].all("RUN"))
        assert "pip wheel" in runs
        assert "--no-deps" in runs

    def test_runtime_installs_only_the_built_wheel(self, dockerfile: Dockerfile) -> None:
        """The runtime stage installs the wheel from the builder without pip's cache, and no apt."""
        runtime = dockerfile.runtime
        assert any(f"--from={dockerfile.stages[0].name}" in c for c in runtime.all("COPY"))
        installs = [run for run in runtime.all("RUN") if "pip install" in run]
        assert len(installs) == 1
        assert "--no-deps --no-cache-dir /wheels/*.whl" in installs[0]
        assert not [run for run in runtime.all("RUN") if "apt" in run]

    def test_never_copies_or_installs_the_sandbox(self, dockerfile: Dockerfile) -> None:
        """No stage copies sandbox/ or installs the emulators' distribution."""
        for stage in dockerfile.stages:
            for instruction, args in stage.instructions:
                if instruction in {"COPY", "ADD", "RUN"}:
                    assert "sandbox" not in args, (instruction, args)

    def test_entrypoint_is_rotator_and_command_is_run(self, dockerfile: Dockerfile) -> None:
        """ENTRYPOINT and CMD are exec form: ``rotator`` with default command ``run``."""
        assert json.loads(dockerfile.runtime.all("ENTRYPOINT")[-1]) == ["rotator"]
        assert json.loads(dockerfile.runtime.all("CMD")[-1]) == ["run"]

    def test_runs_as_a_fixed_numeric_non_root_user(self, dockerfile: Dockerfile) -> None:
        """USER is numeric, not 0, and the UID and GID the image creates."""
        user, _, group = dockerfile.runtime.all("USER")[-1].partition(":")
        assert user.isdigit()
        assert int(user) != 0
        assert not group or (group.isdigit() and int(group) != 0)
        created = " ".join(dockerfile.runtime.all("RUN"))
        assert f"--uid {user}" in created
        assert f"--gid {group or user}" in created

    def test_carries_the_oci_labels(self, dockerfile: Dockerfile) -> None:
        """Title, description, source, licence and version labels; version from ARG VERSION."""
        labels = dockerfile.runtime.pairs("LABEL")
        for name in ("title", "description", "source", "licenses", "version"):
            assert labels.get(f"org.opencontainers.image.{name}"), name
        assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
        assert labels["org.opencontainers.image.version"] == "${VERSION}"

    def test_default_version_is_the_package_version(self, dockerfile: Dockerfile) -> None:
        """The VERSION build argument defaults to the version in pyproject.toml."""
        assert dockerfile.runtime.pairs("ARG")["VERSION"] == PYPROJECT["project"]["version"]

    def test_environment_suits_a_read_only_root(self, dockerfile: Dockerfile) -> None:
        """No bytecode writes, unbuffered output, HOME and TMPDIR on the /tmp volume."""
        env = dockerfile.runtime.pairs("ENV")
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["HOME"] == "/tmp"
        assert env["TMPDIR"] == "/tmp"

    def test_exposes_the_default_server_port(self, dockerfile: Dockerfile) -> None:
        """EXPOSE names the port of the default ``server.listen``."""
        assert dockerfile.runtime.all("EXPOSE") == [str(ServerSettings().port)]

    def test_leaves_health_checks_to_kubernetes(self, dockerfile: Dockerfile) -> None:
        """HEALTHCHECK is NONE; the manifests probe /healthz and /readyz."""
        assert dockerfile.runtime.all("HEALTHCHECK") == ["NONE"]


# --- the build context and the wheel -------------------------------------------------------------


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore`` as (excluded?, regex) in order; the last matching rule wins."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*|\?|\[[^\]]*\])", pattern):
            if part == "**/":
                regex += "(?:.*/)?"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            elif part.startswith("["):
                regex += part
            else:
                regex += re.escape(part)
        # A pattern that matches a directory matches everything below it.
        rules.append((exclude, re.compile(f"{regex}(?:/.*)?")))
    return rules


def build_context(destination: Path) -> Path:
    """Copy the files ``.dockerignore`` admits into ``destination``, as docker would send them."""
    rules = _dockerignore_rules()
    skip = {".git", ".venv"}  # big trees every rule set here excludes; not worth walking
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in skip or not path.is_file():
            continue
        excluded = False
        for exclude, regex in rules:
            if regex.fullmatch(relative.as_posix()):
                excluded = exclude
        if not excluded:
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return destination


def run(args: list[str | Path], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; fail the test with its output when it fails."""
    result = subprocess.run(  # noqa: PLW1510 - the return code is checked below with context
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if result.returncode != 0:
        pytest.fail(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Docker build context."""
    return build_context(tmp_path_factory.mktemp("context"))


@pytest.fixture(scope="module")
def wheel(context: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from the build context as the builder stage does."""
    wheels = tmp_path_factory.mktemp("wheels")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "--quiet",
         "--wheel-dir", wheels, "."],
        PIP_TIMEOUT,
        cwd=context,
    )  # fmt: skip
    (built,) = wheels.glob("*.whl")
    return built


@pytest.mark.slow
class TestBuildContext:
    """What ``.dockerignore`` lets into the image build."""

    def test_admits_the_sources_the_wheel_is_built_from(self, context: Path) -> None:
        """pyproject.toml, README.md and the package with its data files are in the context."""
        for name in ("pyproject.toml", "README.md", "rotator/__init__.py", "rotator/py.typed"):
            assert (context / name).is_file(), name

    def test_keeps_the_emulators_out(self, context: Path) -> None:
        """Neither sandbox/ (the emulators' distribution) nor an OpenAPI excerpt gets in."""
        assert not (context / "sandbox").exists()
        assert not (context / "rotator" / "sandbox").exists()
        assert not [p for p in context.rglob("*") if p.is_dir() and "sandbox" in p.name]
        assert not list(context.rglob("stackstate-openapi.yaml"))

    def test_keeps_everything_else_out(self, context: Path) -> None:
        """No tests, virtualenv, git data, deploy files, local configs or bytecode get in."""
        top = {path.name for path in context.iterdir()}
        assert top == {"pyproject.toml", "README.md", "requirements.lock", "rotator"}
        assert not list(context.rglob("__pycache__"))
        assert not list(context.rglob("*.pyc"))


@pytest.mark.slow
class TestWheel:
    """The wheel the builder stage produces."""

    def test_contains_package_data(self, wheel: Path) -> None:
        """The py.typed marker is packaged; the emulators and the OpenAPI excerpt are not."""
        names = set(zipfile.ZipFile(wheel).namelist())
        assert "rotator/py.typed" in names
        assert "rotator/cli/__init__.py" in names
        assert not [n for n in names if n.startswith(("rotator_sandbox/", "rotator/sandbox/"))]
        assert not [n for n in names if n.endswith("stackstate-openapi.yaml")]

    def test_contains_no_tests_or_bytecode(self, wheel: Path) -> None:
        """Only the ``rotator`` package and its metadata, no tests, bench or .pyc files."""
        names = zipfile.ZipFile(wheel).namelist()
        tops = {name.split("/")[0] for name in names}
        assert tops == {
            "rotator",
            f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
        }
        assert not [name for name in names if name.endswith((".pyc", ".pyo"))]

    def test_declares_the_runtime_dependencies_and_console_script(self, wheel: Path) -> None:
        """Requires-Dist are pyproject's dependencies (tests only as extra); ``rotator`` script."""
        archive = zipfile.ZipFile(wheel)
        dist_info = next(n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n)
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)
        unconditional = {Requirement(r) for r in requires if "extra ==" not in r}
        assert unconditional == {Requirement(d) for d in PYPROJECT["project"]["dependencies"]}
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        assert "rotator = rotator.cli:main" in entry_points


# --- the runtime stage's install step and the image's commands -----------------------------------


@dataclass
class Image:
    """The installed wheel in a fresh virtual environment, run with the image's environment."""

    venv: Path
    scratch: Path

    @property
    def env(self) -> dict[str, str]:
        """The image's ENV with /tmp mapped to a scratch directory; nothing else inherited."""
        env = Dockerfile.parse(DOCKERFILE.read_text()).runtime.pairs("ENV")
        env = {k: v.replace("/tmp", str(self.scratch)) for k, v in env.items()}
        env["PATH"] = f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        return env

    def rotator(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run the image's entrypoint with ``args`` (like ``docker run IMAGE args``)."""
        return run([self.venv / "bin" / "rotator", *args], COMMAND_TIMEOUT, env=self.env, **kwargs)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every file of the installation with its size and modification time."""
        return {
            str(path): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in self.venv.rglob("*")
            if path.is_file()
        }


@pytest.fixture(scope="module")
def image(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The runtime stage into a fresh venv of the base interpreter: the locked dependencies with
    ``--require-hashes``, then the wheel alone, then ``pip check`` (as the Dockerfile does)."""
    root = tmp_path_factory.mktemp("image")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", venv], PIP_TIMEOUT)
    pip = [venv / "bin" / "python", "-m", "pip"]
    lock = ROOT / "requirements.lock"
    run([*pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", lock], PIP_TIMEOUT)
    run([*pip, "install", "--quiet", "--no-deps", wheel], PIP_TIMEOUT)
    run([*pip, "check"], PIP_TIMEOUT)
    scratch = root / "tmp"
    scratch.mkdir()
    return Image(venv, scratch)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
class TestInstalledImage:
    """The image's install step and commands, in a virtual environment without the test extra."""

    def test_package_comes_from_the_installed_wheel(self, image: Image) -> None:
        """``rotator`` is imported from the fresh installation, not from the source tree."""
        result = run(
            [image.venv / "bin" / "python", "-c", "import rotator; print(rotator.__file__)"],
            COMMAND_TIMEOUT,
            env=image.env,
            cwd=image.scratch,
        )
        assert Path(result.stdout.strip()).is_relative_to(image.venv)

    def test_test_extra_is_not_installed(self, image: Image) -> None:
        """pytest, mypy, the other test-only packages and the emulators are not in the image."""
        modules = ("pytest", "mypy", "hypothesis", "jsonschema", "rotator_sandbox")
        code = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])"
        result = run([image.venv / "bin" / "python", "-c", code], COMMAND_TIMEOUT, env=image.env)
        assert result.stdout.strip() == "[]"

    def test_sandbox_commands_say_how_to_get_the_emulators(self, image: Image) -> None:
        """``rotator demo`` and ``rotator sandbox`` exit 2 naming ``pip install -e ./sandbox``."""
        for command in ("demo", "sandbox"):
            result = subprocess.run(
                [image.venv / "bin" / "rotator", command],
                capture_output=True, text=True, timeout=COMMAND_TIMEOUT, env=image.env,
                cwd=image.scratch, check=False,
            )  # fmt: skip
            assert result.returncode == 2, result.stderr
            assert "Traceback" not in result.stderr
            assert "pip install -e ./sandbox" in " ".join(result.stderr.split())

    def test_version_and_help_run(self, image: Image) -> None:
        """``--version`` prints the package version; ``--help`` lists the commands."""
        version = image.rotator("--version")
        assert PYPROJECT["project"]["version"] in version.stdout
        listing = image.rotator("--help").stdout
        for command in ("run", "rotate", "status", "check-config", "keys", "history"):
            assert re.search(rf"^\s+{command}\s", listing, re.MULTILINE), command

    def test_run_help_runs(self, image: Image) -> None:
        """The image's default command ``run`` exists and documents itself."""
        assert "Usage: rotator run" in image.rotator("run", "--help").stdout

    def test_commands_write_nothing_into_the_installation(self, image: Image) -> None:
        """Running the CLI leaves the (read-only in the image) installation untouched."""
        before = image.snapshot()
        image.rotator("--version")
        image.rotator("--help")
        image.rotator("run", "--help")
        image.rotator("config", "schema")
        assert image.snapshot() == before

    def test_validates_the_helm_chart_configmap(self, image: Image, tmp_path: Path) -> None:
        """The chart's rendered rotator.yaml passes ``check-config`` with the chart's Secret env."""
        from tests.deploy.chart import render

        rendered = render()
        config = tmp_path / "rotator.yaml"
        config.write_text(rendered.one("ConfigMap")["data"]["rotator.yaml"])
        (container,) = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
        secret_env = {entry["name"]: "a-token" for entry in container["env"]}
        env = image.env | {"ROTATOR_CONFIG": str(config)} | secret_env
        result = run([image.venv / "bin" / "rotator", "check-config"], COMMAND_TIMEOUT, env=env)
        assert result.stdout.startswith("ok:")

    def test_daemon_serves_probes_and_stops_cleanly(self, image: Image, tmp_path: Path) -> None:
        """``rotator run`` bootstraps a key, answers /healthz and /readyz, exits 0 on SIGTERM."""
        port = free_port()
        token = tmp_path / "service-token"
        token.write_text("sandbox-service-token\n")
        key_file = tmp_path / "agent" / "api_key"
        key_file.parent.mkdir()
        with StackStateEmulator(service_token="sandbox-service-token") as stackstate:
            config = tmp_path / "rotator.yaml"
            config.write_text(
                yaml.safe_dump({
                    "stackstate": {
                        "url": stackstate.url,
                        "service_token_file": str(token),
                        "allow_insecure_http": True,
                        "timeout": "5s",
                    },
                    "keys": [{
                        "name": "agent-image",
                        "kind": "service-token",
                        "roles": ["stackstate-ingest-telemetry"],
                        "targets": [{"type": "file", "path": str(key_file), "format": "raw"}],
                    }],
                    "server": {"listen": f"127.0.0.1:{port}"},
                })
            )  # fmt: skip
            env = image.env | {"ROTATOR_CONFIG": str(config)}
            log = (tmp_path / "daemon.log").open("w")
            process = subprocess.Popen(
                [image.venv / "bin" / "rotator", "--log-format", "json", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                base = f"http://127.0.0.1:{port}"

                def status(path: str) -> int:
                    try:
                        return httpx.get(base + path, timeout=2.0).status_code
                    except httpx.TransportError:
                        return 0

                wait_for(lambda: status("/healthz") == 200, "/healthz")
                wait_for(lambda: status("/readyz") == 200, "/readyz")
                wait_for(key_file.exists, "the bootstrapped key in the file target")
                metrics = httpx.get(base + "/metrics", timeout=2.0).text
                assert "rotator_is_leader 1.0" in metrics
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=COMMAND_TIMEOUT) == 0
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=COMMAND_TIMEOUT)
                log.close()
        assert key_file.read_text().strip() not in (tmp_path / "daemon.log").read_text()


# --- deploy/ -------------------------------------------------------------------------------------


def load_deploy_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every non-empty YAML document under deploy/, with its file (the Helm chart's templates,
    Go templates, are not YAML until rendered: tests/deploy/test_helm_chart.py renders them)."""
    documents = []
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        if (DEPLOY / "helm") in path.parents:
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                documents.append((path, document))
    return documents


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """The Kubernetes objects under deploy/kubernetes by ``Kind/name``."""
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc
        for path, doc in load_deploy_documents()
        if path.parent.name == "kubernetes" and doc.get("kind") != "Kustomization"
    }


class TestDeployYaml:
    """The YAML files under deploy/."""

    def test_every_document_has_kind_and_api_version(self) -> None:
        """Each document parses and names its apiVersion and kind."""
        documents = load_deploy_documents()
        assert documents
        for path, document in documents:
            assert document.get("apiVersion"), path
            assert document.get("kind"), path

    def test_alert_rules_cover_the_agreed_conditions(self, manifests: dict[str, Any]) -> None:
        """Runway, failed rotations and steps, staleness, leaderless and down are alerted."""
        rules = manifests["PrometheusRule/stackstate-key-rotator"]["spec"]["groups"][0]["rules"]
        exprs = " ".join(" ".join(rule["expr"].split()) for rule in rules)
        for needle in (
            "rotator_key_rotation_runway_seconds",
            ") < 0",
            ") < 86400",
            'increase(rotator_rotations_total{result="failed"}[1h])',
            "increase(rotator_step_failures_total[1h])",
            "time() - max by (key) (rotator_last_success_timestamp_seconds) > 2 * 3600",
            "max(rotator_is_leader) == 0",
            'up{job="stackstate-key-rotator"} == 0',
        ):
            assert needle in exprs, needle
        assert {rule["labels"]["severity"] for rule in rules} == {"page", "warning"}
        assert all(rule["annotations"]["summary"] for rule in rules)
