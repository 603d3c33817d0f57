"""Pure drift detection and the volume/backup parts of the status."""

from __future__ import annotations

import copy
from typing import Any

from tradebot_operator.builders import StackAccess, build_children
from tradebot_operator.drift import foreign_drift, matches
from tradebot_operator.health import backup_problems, backup_status, track_volumes

ACCESS = StackAccess("pw", "redis-pw", "token-of-the-test-stack")
BODY = {"metadata": {"name": "d", "namespace": "n", "uid": "u"}, "spec": {}}


def child(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in build_children(BODY, ACCESS) if (o["kind"], o["metadata"]["name"]) == (kind, name))


def live(obj: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """What the API server returns: our fields plus its own."""
    copied = copy.deepcopy(obj)
    return {
        **copied,
        "metadata": {**copied["metadata"], "resourceVersion": "7", "uid": "x", **meta},
        "status": {},
    }


def test_a_child_as_built_matches_and_has_no_foreign_drift() -> None:
    for obj in build_children(BODY, ACCESS):
        assert matches(obj, live(obj)) and foreign_drift(obj, live(obj)) == []


def test_a_changed_value_does_not_match() -> None:
    wanted = child("Deployment", "d-api")
    changed = live(wanted)
    changed["spec"] = {**wanted["spec"], "replicas": 3}
    assert not matches(wanted, changed)
    assert matches({"a": 1}, {"a": 1.0, "b": 2}) and not matches({"a": True}, {"a": 1})
    assert matches({"volumes": [], "x": {}}, {}) and not matches(
        {"volumes": [1]}, {}
    )  # the server drops empties


def test_an_added_env_var_is_taken_out_with_a_guard() -> None:
    wanted = child("StatefulSet", "d-strategy")
    edited = live(wanted)
    container = edited["spec"]["template"]["spec"]["containers"][0]
    edited["spec"]["template"]["spec"]["containers"] = [
        {**container, "env": [*container["env"], {"name": "X"}]}
    ]
    patch = foreign_drift(wanted, edited)
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert patch[1] == {
        "op": "add",
        "path": "/spec/template/spec/containers/0/env",
        "value": wanted["spec"]["template"]["spec"]["containers"][0]["env"],
    }


def test_an_added_configmap_key_and_a_moved_port_are_put_back() -> None:
    config = child("ConfigMap", "d-config")
    extra = live(config)
    extra["data"] = {**config["data"], "EXTRA": "1"}
    assert foreign_drift(config, extra)[1] == {"op": "add", "path": "/data", "value": config["data"]}
    service = child("Service", "d-api")
    moved = live(service)
    moved["spec"] = {**service["spec"], "ports": [{"name": "http", "port": 9000, "protocol": "TCP"}]}
    assert foreign_drift(service, moved)[1]["value"] == service["spec"]["ports"]


def test_a_sidecar_someone_injects_is_theirs() -> None:
    wanted = child("Deployment", "d-api")
    injected = live(wanted)
    pod = injected["spec"]["template"]["spec"]
    pod["containers"] = [*pod["containers"], {"name": "mesh-proxy", "env": [{"name": "A"}]}]
    assert foreign_drift(wanted, injected) == []


def test_the_first_claim_is_recorded_and_a_new_one_reported_until_accepted() -> None:
    first = {
        "timescaledb": {"claim": "data-d-timescaledb-0", "uid": "1", "volumeName": "pv-1", "capacity": ""}
    }
    record, problems = track_volumes(None, first)
    assert record == first and not problems
    grown = {"timescaledb": {**first["timescaledb"], "capacity": "10Gi"}}
    record, problems = track_volumes(record, grown)
    assert record["timescaledb"]["capacity"] == "10Gi" and not problems
    replaced = {
        "timescaledb": {"claim": "data-d-timescaledb-0", "uid": "2", "volumeName": "pv-9", "capacity": ""}
    }
    kept, problems = track_volumes(record, replaced)
    assert kept == record and [p.reason for p in problems] == ["DataVolumeReplaced"]
    assert "pv-9" in problems[0].message and "was pv-1" in problems[0].message
    accepted, problems = track_volumes(record, replaced, accept=True)
    assert accepted == replaced and not problems


def test_backup_status_follows_the_newest_job() -> None:
    cron = {"spec": {"schedule": "0 3 * * *"}, "status": {"lastScheduleTime": "2026-01-01T03:00:00Z"}}

    def job(name: str, created: str, condition: str | None, message: str = "") -> dict[str, Any]:
        conditions = [{"type": condition, "status": "True", "message": message}] if condition else []
        return {
            "metadata": {"name": name, "creationTimestamp": created},
            "status": {"conditions": conditions},
        }

    ok = backup_status(cron, [job("b-1", "2026-01-01T03:00:00Z", "Complete")])
    assert ok == {"schedule": "0 3 * * *", "lastScheduleTime": "2026-01-01T03:00:00Z", "lastJob": "b-1",
                  "lastResult": "Succeeded"}  # fmt: skip
    jobs = [
        job("b-1", "2026-01-01T03:00:00Z", "Complete"),
        job("b-2", "2026-01-02T03:00:00Z", "Failed", "Oops"),
    ]
    failed = backup_status(cron, jobs)
    assert failed["lastResult"] == "Failed" and failed["lastJob"] == "b-2"
    assert [p.reason for p in backup_problems(failed)] == ["BackupFailed"]
    assert backup_status(cron, [job("b-3", "2026-01-03T03:00:00Z", None)])["lastResult"] == "Running"
    assert not backup_problems(ok)
