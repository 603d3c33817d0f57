"""The pure builders: every child of a stack, from its spec alone (no cluster)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tradebot.common import timescaledb
from tradebot.common.settings import Settings, variables_read_by
from tradebot.providers.registry import DATA_SOURCES
from tradebot_operator.builders import Stack, StackAccess, build_children
from tradebot_operator.builders.config import config_checksum, environment, password_from_secret
from tradebot_operator.builders.storage import claim_owner_patch
from tradebot_operator.spec import InvalidSpec, parse_spec

PASSWORD = "s3cret-Pass_word"
ACCESS = StackAccess(PASSWORD, "redis-Pass_word", "auth-token-of-the-demo-stack", "tradebot")


def body(name: str = "demo", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "trading", "uid": "uid-1", "generation": 1},
        "spec": {"symbols": ["AAPL", "MSFT"], **spec},
    }


def by_name(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def deployment_names(objs: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs if o["kind"] == "Deployment")


def container(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by_name(objs)[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]


def test_a_synthetic_stack_has_every_child_named_as_the_architecture_says() -> None:
    objs = build_children(body(), ACCESS)
    assert sorted(by_name(objs)) == sorted(
        [("Secret", "demo-db"), ("Secret", "demo-auth"), ("ConfigMap", "demo-config")]
        + [("Service", f"demo-{c}") for c in ("redis", "timescaledb", "api", "dashboard", "strategy")]
        + [("NetworkPolicy", f"demo-{c}") for c in ("redis", "timescaledb", "api", "dashboard")]
        + [("StatefulSet", f"demo-{c}") for c in ("redis", "timescaledb", "strategy")]
        + [("Deployment", f"demo-{c}") for c in ("market-data", "execution", "storage", "api", "dashboard")]
    )
    for obj in objs:
        meta = obj["metadata"]
        assert meta["namespace"] == "trading"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "tradebot.dev/v1alpha1",
                "kind": "TradingStack",
                "name": "demo",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"] == {
            "app.kubernetes.io/name": "tradebot",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": meta["labels"]["app.kubernetes.io/component"],
            "app.kubernetes.io/part-of": "tradebot",
            "app.kubernetes.io/managed-by": "tradebot-operator",
        }


@pytest.mark.parametrize(
    ("source", "deployment"),
    [
        ("synthetic", "demo-market-data"),
        ("alpaca", "demo-alpaca-market-data"),
        ("polygon", "demo-polygon-market-data"),
    ],
)
def test_only_the_market_data_service_of_the_source_runs(source: str, deployment: str) -> None:
    objs = build_children(body(dataSource=source, credentials={"secretRef": {"name": "keys"}}), ACCESS)
    feeds = [n for n in deployment_names(objs) if n.endswith("market-data")]
    assert feeds == [deployment]
    env = container(objs, deployment)["env"]
    for key in DATA_SOURCES[source].credentials:
        assert {"name": key, "valueFrom": {"secretKeyRef": {"name": "keys", "key": key}}} in env
    # No other service sees the provider's keys.
    for name in deployment_names(objs):
        if name != deployment:
            assert not any(
                e["name"] in ("ALPACA_KEY", "ALPACA_SECRET", "POLYGON_API_KEY")
                for e in container(objs, name)["env"]
            )


PROVIDER_KEYS = ("ALPACA_KEY", "ALPACA_SECRET", "POLYGON_API_KEY")


def provider_keys(objs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Deployment -> the provider keys its pods get (each from the stack's credentials Secret)."""
    found = {}
    for name in deployment_names(objs):
        env = [e for e in container(objs, name)["env"] if e["name"] in PROVIDER_KEYS]
        assert all(e["valueFrom"]["secretKeyRef"] == {"name": "keys", "key": e["name"]} for e in env)
        if env:
            found[name] = [e["name"] for e in env]
    return found


@pytest.mark.parametrize(
    ("source", "keys"),
    [
        ("synthetic", {"demo-execution": ["ALPACA_KEY", "ALPACA_SECRET"]}),
        ("polygon", {"demo-execution": ["ALPACA_KEY", "ALPACA_SECRET"],
                     "demo-polygon-market-data": ["POLYGON_API_KEY"]}),
        ("alpaca", {"demo-execution": ["ALPACA_KEY", "ALPACA_SECRET"],
                    "demo-alpaca-market-data": ["ALPACA_KEY", "ALPACA_SECRET"]}),
    ],
)  # fmt: skip
def test_an_alpaca_venue_gets_the_alpaca_keys_in_execution_only(source: str, keys: dict) -> None:
    spec = {
        "dataSource": source,
        "execution": {"venue": "alpaca"},
        "credentials": {"secretRef": {"name": "keys"}},
    }
    objs = build_children(body(**spec), ACCESS)
    assert provider_keys(objs) == keys
    assert by_name(objs)[("ConfigMap", "demo-config")]["data"]["EXECUTION_VENUE"] == "alpaca"
    simulated = build_children(body(**{**spec, "execution": {}}), ACCESS)
    assert "demo-execution" not in provider_keys(simulated)  # the simulator has no use for them
    with pytest.raises(InvalidSpec, match=r"execution\.venue alpaca needs credentials\.secretRef"):
        parse_spec({"execution": {"venue": "alpaca"}})


def test_the_configmap_is_an_environment_the_services_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = Stack.from_body(
        body(
            symbolMode="custom",
            symbols=["AAPL", "BRK.B"],
            risk={"maxOrderNotional": 12500.5, "maxOpenPositions": 7},
            trading={"sizing": "risk", "riskPerTradePct": 0.25, "trailingStopPct": 3, "cooldownSeconds": 60},
        )
    )
    env = environment(stack)
    fields = {name.upper() for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    assert "REDIS_URL" not in env  # it carries the password: from the stack's auth Secret
    assert env["API_URL"] == "http://demo-api:8000"
    for key, value in {
        **env,
        "DATABASE_URL": "postgresql://tradebot:x@demo-timescaledb:5432/tradebot",
        "REDIS_URL": "redis://:x@demo-redis:6379",
    }.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.symbols == ("AAPL", "BRK.B")
    assert settings.max_order_notional == 12500.5 and settings.max_open_positions == 7
    assert settings.max_position_per_symbol == 1000  # the default, written as "1000"
    assert (settings.sizing, settings.risk_per_trade_pct, settings.trailing_stop_pct) == ("risk", 0.25, 3)
    assert (
        settings.cooldown_seconds == 60
        and settings.stop_loss_pct == Settings.model_fields["stop_loss_pct"].default
    )
    assert (settings.data_source, settings.log_format, settings.probe_port) == ("synthetic", "json", 8080)


def test_the_database_secret_holds_the_generated_password_and_url() -> None:
    secret = by_name(build_children(body(), ACCESS))[("Secret", "demo-db")]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["POSTGRES_PASSWORD"] == PASSWORD
    assert data["DATABASE_URL"] == f"postgresql://tradebot:{PASSWORD}@demo-timescaledb:5432/tradebot"
    assert password_from_secret(secret) == PASSWORD
    assert password_from_secret(None) is None


def test_only_services_that_use_the_database_get_its_url() -> None:
    objs = build_children(body(), ACCESS)
    with_db = [
        n
        for n in deployment_names(objs)
        if any(e["name"] == "DATABASE_URL" for e in container(objs, n)["env"])
    ]
    assert with_db == ["demo-api", "demo-storage"]


def checksums(**spec: Any) -> dict[str, str]:
    objs = build_children(body(**spec), ACCESS)
    return {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"][
            "tradebot.dev/config-checksum"
        ]
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
        and "tradebot.dev/config-checksum" in (o["spec"]["template"]["metadata"].get("annotations") or {})
    }


@pytest.mark.parametrize(
    ("change", "rolled"),
    [
        ({"symbolMode": "popular"}, {"demo-market-data"}),
        ({"symbols": ["TSLA"]}, {"demo-market-data"}),
        ({"risk": {"dailyLossLimit": 100}}, {"demo-execution", "demo-api"}),  # the API backtests with it
        ({"services": {"strategy": {"replicas": 4}}}, set()),
        ({"execution": {"venue": "alpaca"}, "credentials": {"secretRef": {"name": "k"}}}, {"demo-execution"}),
        ({"strategies": [{"name": "rsi", "params": {"period": 10}}]}, {"demo-strategy"}),
        ({"trading": {"stopLossPct": 1, "sizing": "notional"}}, {"demo-execution", "demo-api"}),
    ],
)
def test_a_spec_change_rolls_only_the_deployments_it_affects(change: dict, rolled: set[str]) -> None:
    before, after = checksums(), checksums(**change)
    assert {name for name in before if before[name] != after[name]} == rolled


def test_each_configmap_variable_rolls_exactly_the_services_that_read_it() -> None:
    env = environment(Stack.from_body(body()))
    services = [
        *(s.service_id for s in DATA_SOURCES.values()),
        "strategy",
        "execution",
        "storage",
        "api",
        "dashboard",
    ]
    for name in env:
        changed = {**env, name: env[name] + "0"}
        rolled = {sid for sid in services if config_checksum(env, sid) != config_checksum(changed, sid)}
        assert rolled == {sid for sid in services if name in variables_read_by(sid)}, name
        assert rolled, f"{name} is in the ConfigMap but no service reads it"


def test_an_empty_spec_is_a_working_stack() -> None:
    stack = Stack.from_body({"metadata": {"name": "d", "namespace": "n", "uid": "u"}, "spec": {}})
    env = environment(stack)
    assert env["SYMBOLS"] == "AAPL,MSFT,AMZN,GOOG,TSLA" and env["SYMBOL_MODE"] == "custom"
    for key, value in env.items():
        assert Settings(_env_file=None, **{key.lower(): value})  # each value is one Settings accepts


def test_pods_are_probed_hardened_and_sized() -> None:
    objs = build_children(body(services={"storage": {"resources": {"limits": {"memory": "1Gi"}}}}), ACCESS)
    ports = {"demo-api": 8000, "demo-dashboard": 8001}
    for name in deployment_names(objs):
        deployment = by_name(objs)[("Deployment", name)]
        pod = deployment["spec"]["template"]["spec"]
        main = pod["containers"][0]
        port = ports.get(name, 8080)
        assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port}
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert main["args"][0] == "service" and main["image"] == "ghcr.io/tradebot/tradebot:0.1.0"
        assert main["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert pod["securityContext"]["runAsNonRoot"] is True
        if name != "demo-storage":  # its resources are given below; the others have the defaults
            assert main["resources"]["requests"] and main["resources"]["limits"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert container(objs, "demo-storage")["resources"] == {"limits": {"memory": "1Gi"}}
    assert by_name(objs)[("Deployment", "demo-execution")]["spec"]["strategy"] == {"type": "Recreate"}


def test_stores_are_statefulsets_with_claims_behind_headless_services() -> None:
    objs = by_name(
        build_children(body(timescaledb={"storage": {"size": "50Gi", "storageClassName": "fast"}}), ACCESS)
    )
    for store, port in (("redis", 6379), ("timescaledb", 5432)):
        service = objs[("Service", f"demo-{store}")]
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["ports"][0]["port"] == port
        sts = objs[("StatefulSet", f"demo-{store}")]
        assert sts["spec"]["serviceName"] == f"demo-{store}"
        # The claims outlive a StatefulSet deleted by hand; the stack owns them instead (below).
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
        template = sts["spec"]["volumeClaimTemplates"][0]
        assert template["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "tradebot-operator"
        main = sts["spec"]["template"]["spec"]["containers"][0]
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    claim = objs[("StatefulSet", "demo-timescaledb")]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "50Gi" and claim["storageClassName"] == "fast"
    redis_claim = objs[("StatefulSet", "demo-redis")]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert redis_claim["resources"]["requests"]["storage"] == "1Gi" and "storageClassName" not in redis_claim
    db_env = objs[("StatefulSet", "demo-timescaledb")]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "POSTGRES_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "demo-db", "key": "POSTGRES_PASSWORD"}},
    } in db_env


def test_api_and_dashboard_have_cluster_ip_services() -> None:
    objs = by_name(build_children(body(), ACCESS))
    for sid, port in (("api", 8000), ("dashboard", 8001)):
        spec = objs[("Service", f"demo-{sid}")]["spec"]
        assert spec["type"] == "ClusterIP" and spec["ports"][0]["port"] == port
        assert spec["selector"]["app.kubernetes.io/component"] == sid


def test_building_is_pure_and_deterministic() -> None:
    assert build_children(body(), ACCESS) == build_children(body(), ACCESS)


def test_the_stack_owns_its_claims_unless_it_retains_them() -> None:
    stack = Stack.from_body(body())
    claim = {"metadata": {"name": "data-demo-redis-0", "ownerReferences": []}}
    patch = claim_owner_patch(stack, claim)
    assert patch is not None
    (ref,) = patch["metadata"]["ownerReferences"]
    assert (ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == ("uid-1", False, False)
    owned = {"metadata": {"name": "data-demo-redis-0", "ownerReferences": [ref]}}
    assert claim_owner_patch(stack, owned) is None
    retained = Stack.from_body(body(storage={"reclaimPolicy": "Retain"}))
    assert claim_owner_patch(retained, owned) == {
        "metadata": {"ownerReferences": [{"$patch": "delete", "uid": "uid-1"}]}
    }
    assert claim_owner_patch(retained, claim) is None


def test_timescaledb_runs_the_pg18_image_with_its_volume_layout() -> None:
    sts = by_name(build_children(body(), ACCESS))[("StatefulSet", "demo-timescaledb")]
    main = sts["spec"]["template"]["spec"]["containers"][0]
    # The version the embedded default builds and the tests run, on the wheel's PostgreSQL major.
    assert (
        main["image"]
        == f"timescale/timescaledb:{timescaledb.VERSION}-pg18"
        == "timescale/timescaledb:2.29.2-pg18"
    )
    # PostgreSQL 18 images: PGDATA is /var/lib/postgresql/18/docker under the VOLUME /var/lib/postgresql.
    assert {"name": "data", "mountPath": "/var/lib/postgresql"} in main["volumeMounts"]
    assert not any(e["name"] == "PGDATA" for e in main["env"])
    assert main["args"] == [
        "postgres", "-c", "shared_preload_libraries=timescaledb", "-c", "timescaledb.telemetry_level=off",
    ]  # fmt: skip


def test_backups_are_a_cronjob_running_the_db_backup_command_on_their_own_claim() -> None:
    assert not [o for o in build_children(body(), ACCESS) if o["kind"] == "CronJob"]
    objs = by_name(build_children(body(backup={"schedule": "30 2 * * *", "retention": 3}), ACCESS))
    cron = objs[("CronJob", "demo-backup")]["spec"]
    assert (cron["schedule"], cron["concurrencyPolicy"], cron["timeZone"]) == (
        "30 2 * * *",
        "Forbid",
        "Etc/UTC",
    )
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    job = pod["containers"][0]
    assert job["args"] == ["db", "backup", "--dir", "/backups", "--keep", "3"]
    assert {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "demo-db", "key": "DATABASE_URL"}},
    } in job["env"]
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "demo-backups"}
    claim = objs[("PersistentVolumeClaim", "demo-backups")]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_every_pod_serves_prometheus_metrics() -> None:
    for obj in build_children(body(), ACCESS):
        if obj["kind"] == "Deployment":
            main = obj["spec"]["template"]["spec"]["containers"][0]
            assert {"name": "metrics", "containerPort": 9464} in main["ports"]
            assert {"name": "OTEL_METRICS_EXPORTER", "value": "prometheus"} in main["env"]
