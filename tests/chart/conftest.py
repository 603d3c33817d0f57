"""Fixtures for the chart, manifest and image checks.

`helm` is the pinned helm v3 of the test control plane (scripts/controlplane/build.sh, cached);
`render` runs `helm template` with values and returns the objects. `control_plane` is the k8s
tests' session fixture (tests/k8s/fixtures.py, a plugin of the root conftest), shared with them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from chart.support import CHART, Helm, Obj, load_objects, values_args
from k8s.controlplane import ControlPlaneError, ensure_binaries


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        bin_dir = ensure_binaries(progress=sys.stderr)
    except ControlPlaneError as exc:
        pytest.fail(f"could not build the pinned helm: {exc}", pytrace=False)
    return Helm(bin_dir / "helm", tmp_path_factory.mktemp("helm-home"))


Render = Callable[..., list[Obj]]


@pytest.fixture(scope="session")
def render(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """`helm template` of the chart: render(values, namespace=..., release=..., crds=False, tests=True)."""
    tmp = tmp_path_factory.mktemp("values")

    def _render(
        values: Mapping[str, Any] | None = None,
        namespace: str = "tradebot",
        release: str = "tradebot",
        crds: bool = False,
    ) -> list[Obj]:
        args = ["template", release, str(CHART), "--namespace", namespace, *values_args(values, tmp)]
        if crds:
            args.append("--include-crds")
        return load_objects(helm.check(*args))

    return _render


@pytest.fixture
def values_file(tmp_path: Path) -> Iterator[Callable[[Mapping[str, Any]], list[str]]]:
    yield lambda values: values_args(values, tmp_path)
