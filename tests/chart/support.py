"""Helpers of the chart tests: the pinned helm, rendering, paths (imported as chart.support)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from k8s.controlplane import REPO_ROOT

CHART = REPO_ROOT / "charts" / "tradebot"
CRD_FILE = CHART / "crds" / "tradingstacks.yaml"
RBAC_FILE = CHART / "files" / "operator-rbac-rules.yaml"
KUBERNETES_VERSION = "1.37.0"  # the schemas kubernetes-validate checks against (the control plane's minor)

Obj = dict[str, Any]


class HelmError(AssertionError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.stderr = result.stderr
        super().__init__(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")


class Helm:
    """The pinned helm binary with its caches kept in a temporary directory."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def check(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> str:
        result = self.run(*args, env=env, timeout=timeout)
        if result.returncode != 0:
            raise HelmError(list(args), result)
        return result.stdout


def values_args(values: Mapping[str, Any] | None, tmp: Path) -> list[str]:
    """A values file (JSON is YAML) for helm's -f: nested values keep their types exactly."""
    if not values:
        return []
    path = tmp / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.json"
    path.write_text(json.dumps(values))
    return ["-f", str(path)]


def load_objects(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]
