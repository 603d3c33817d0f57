"""Fixtures for tests against a real Kubernetes control plane.

``control_plane`` (session scope) builds the pinned binaries on first use
(scripts/controlplane/build.sh, cached outside the repo), starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback
ports, registers one kwok node, and tears everything down at the end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s.controlplane import ControlPlane, ControlPlaneError, ensure_binaries


@contextlib.contextmanager
def _uncaptured(config: pytest.Config) -> Iterator[None]:
    """Let build progress reach the terminal even while pytest captures output."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


_BUILD_ERROR = pytest.StashKey[BaseException]()
_BIN_DIR = pytest.StashKey[Path]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries before the first test that needs them.

    A cold build takes many minutes: doing it here keeps it out of any
    per-test timeout (pytest-timeout counts fixture set-up). A failure is
    reported by the fixture, on the tests that need it.
    """
    if session.config.option.collectonly:
        return
    if not any("control_plane" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    with _uncaptured(session.config):
        try:
            session.config.stash[_BIN_DIR] = ensure_binaries(progress=sys.stderr)
        except ControlPlaneError as exc:
            session.config.stash[_BUILD_ERROR] = exc


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    build_error = pytestconfig.stash.get(_BUILD_ERROR, None)
    if build_error is not None:
        pytest.fail(f"could not build the control-plane binaries: {build_error}", pytrace=False)
    with _uncaptured(pytestconfig):
        bin_dir = pytestconfig.stash.get(_BIN_DIR, None) or ensure_binaries(progress=sys.stderr)
        cp = ControlPlane.start(bin_dir=bin_dir)
    try:
        yield cp
    finally:
        cp.stop()
