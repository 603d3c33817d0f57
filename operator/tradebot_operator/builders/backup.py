"""Scheduled backups: a CronJob running `tradebot db backup` (the same code as on a laptop) to a claim.

The claim `<stack>-backups` is a child like the others but never pruned: turning backups
off keeps what was written, and it goes with the stack (reclaimPolicy Retain keeps it).
"""

from __future__ import annotations

from tradebot_operator.builders.common import (
    Obj,
    Stack,
    container_security,
    empty_dir,
    labels,
    metadata,
    pod_security,
    resources,
    secret_env,
)
from tradebot_operator.builders.config import DATABASE_URL, db_secret_name
from tradebot_operator.builders.workloads import APP_UID
from tradebot_operator.spec import Backup

COMPONENT = "backup"
BACKUP_DIR = "/backups"


def cronjob_name(stack: Stack) -> str:
    return stack.child_name(COMPONENT)  # what `kubectl tradebot backup` starts a Job from


def volume_name(stack: Stack) -> str:
    return stack.child_name("backups")


def backup_command(spec: Backup) -> list[str]:
    return ["db", "backup", "--dir", BACKUP_DIR, "--keep", str(spec.retention)]


def job_spec(stack: Stack, spec: Backup) -> Obj:
    """The Job of one backup: also what `kubectl tradebot backup` starts by hand."""
    container: Obj = {
        "name": COMPONENT,
        "image": stack.spec.images.tradebot,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "args": backup_command(spec),
        "env": [
            {"name": "HOME", "value": "/tmp"},
            secret_env(DATABASE_URL, db_secret_name(stack), DATABASE_URL),
        ],
        "resources": resources(spec.resources),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "backups", "mountPath": BACKUP_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 6 * 3600,
        "template": {
            "metadata": {"labels": labels(stack, COMPONENT)},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security(APP_UID, APP_UID),
                "containers": [container],
                "volumes": [
                    {"name": "backups", "persistentVolumeClaim": {"claimName": volume_name(stack)}},
                    empty_dir("tmp"),
                ],
            },
        },
    }


def cronjob(stack: Stack, spec: Backup) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(stack, cronjob_name(stack), COMPONENT),
        "spec": {
            "schedule": spec.schedule,
            "timeZone": "Etc/UTC",
            "suspend": spec.suspend,
            # Never two at once on one volume; a missed run is made up within the hour.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": labels(stack, COMPONENT)}, "spec": job_spec(stack, spec)},
        },
    }


def backup_claim(stack: Stack, spec: Backup) -> Obj:
    claim: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(stack, volume_name(stack), COMPONENT),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.storage.size}},
        },
    }
    if spec.storage.storage_class_name:
        claim["spec"]["storageClassName"] = spec.storage.storage_class_name
    return claim


def backup_children(stack: Stack) -> list[Obj]:
    spec = stack.spec.backup
    return [] if spec is None else [backup_claim(stack, spec), cronjob(stack, spec)]
