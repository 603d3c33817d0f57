"""Acceptance tests of the test control plane (issue 3).

A real kube-apiserver with etcd, controller-manager, scheduler and kwok: a
Deployment's Pods become Running and Ready, the garbage collector removes
dependents, CRD schemas are enforced, kubectl from the wheel works, and a
ServiceAccount gets exactly what its RBAC grants.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from k8s.controlplane import NODE_NAME, ControlPlane
from support.services import wait_for

pytestmark = pytest.mark.k8s

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # never pulled: kwok runs no containers


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def kubectl(
    cp: ControlPlane, *args: str, kubeconfig: Any = None, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [cp.kubectl, *args], env=cp.env(kubeconfig), input=input, capture_output=True, text=True, timeout=60
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        )
    return res


def make_deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="main", image=PAUSE_IMAGE)]),
            ),
        ),
    )


def pod_ready(pod: client.V1Pod) -> bool:
    conds = pod.status.conditions or []
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in conds)


def test_version_is_the_pinned_release(control_plane: ControlPlane, api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()
    assert info.git_version == control_plane.versions()["kubernetes"]
    assert info.major == "1" and int(info.minor.rstrip("+")) >= 33


def test_kwok_node_is_ready(api: client.ApiClient) -> None:
    node = client.CoreV1Api(api).read_node(NODE_NAME)
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"


def test_deployment_pods_become_running_and_ready(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, make_deployment("web", replicas=2))

    def ready_pods() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = [p for p in pods if pod_ready(p)]
        return ready if len(ready) == 2 else []

    pods = wait_for("2 Running and Ready pods", ready_pods)
    assert all(p.spec.node_name == NODE_NAME for p in pods)  # placed by the scheduler
    assert all(p.status.pod_ip for p in pods)  # given an address by kwok
    dep = wait_for(
        "deployment status",
        lambda: (d := apps.read_namespaced_deployment("web", namespace)).status.ready_replicas == 2 and d,
    )
    assert dep.status.available_replicas == 2


def test_deleting_an_owner_garbage_collects_its_dependents(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    # Deployment -> ReplicaSet -> Pods (owner references set by the controllers).
    apps.create_namespaced_deployment(namespace, make_deployment("gc", replicas=1))
    wait_for(
        "a ready pod",
        lambda: [
            p for p in core.list_namespaced_pod(namespace, label_selector="app=gc").items if pod_ready(p)
        ],
    )
    assert apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items

    # An owner reference we set ourselves, on an object no controller manages.
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="dependent",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                    )
                ],
            )
        ),
    )

    apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Background")
    core.delete_namespaced_config_map("owner", namespace)

    wait_for(
        "ReplicaSets collected",
        lambda: not apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items,
    )
    wait_for("Pods collected", lambda: not core.list_namespaced_pod(namespace, label_selector="app=gc").items)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for("dependent ConfigMap collected", dependent_gone)


CRD_GROUP = "test.tradebot.dev"


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                        "mode": {"type": "string", "enum": ["fast", "slow"]},
                                    },
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_is_established_and_its_schema_rejects_bad_objects(api: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api)
    crd_name = f"widgets.{CRD_GROUP}"
    try:
        ext.create_custom_resource_definition(widget_crd())
    except ApiException as e:
        if e.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(crd_name)
        return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

    wait_for("CRD Established", established)
    custom = client.CustomObjectsApi(api)

    def widget(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}

    # Right after Established the discovery/handler can lag by a moment: retry the good create.
    def create_good() -> bool:
        try:
            custom.create_namespaced_custom_object(
                CRD_GROUP, "v1", namespace, "widgets", widget("good", {"size": 3, "mode": "fast"})
            )
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    wait_for("a valid Widget to be accepted", create_good, timeout=30)
    got = custom.get_namespaced_custom_object(CRD_GROUP, "v1", namespace, "widgets", "good")
    assert got["spec"] == {"size": 3, "mode": "fast"}

    for name, spec in [
        ("bad-type", {"size": "big"}),
        ("bad-range", {"size": 11}),
        ("bad-enum", {"size": 1, "mode": "warp"}),
        ("bad-missing", {"mode": "fast"}),
    ]:
        with pytest.raises(ApiException) as info:
            custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, "widgets", widget(name, spec))
        assert info.value.status == 422, (name, info.value.body)
        assert "spec." in json.loads(info.value.body)["message"], name


def test_kubectl_from_the_wheel_works(control_plane: ControlPlane, namespace: str) -> None:
    version = json.loads(kubectl(control_plane, "version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == control_plane.versions()["kubernetes"]

    nodes = json.loads(kubectl(control_plane, "get", "nodes", "-o", "json").stdout)
    assert NODE_NAME in [n["metadata"]["name"] for n in nodes["items"]]

    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "from-kubectl", "namespace": namespace},
            "data": {"k": "v"},
        }
    )
    kubectl(control_plane, "apply", "-f", "-", input=manifest)
    got = kubectl(
        control_plane, "get", "configmap", "from-kubectl", "-n", namespace, "-o", "jsonpath={.data.k}"
    ).stdout
    assert got == "v"
    kubectl(control_plane, "create", "deployment", "kc", "--image", PAUSE_IMAGE, "-n", namespace)
    kubectl(control_plane, "rollout", "status", "deployment/kc", "-n", namespace, "--timeout=60s")


def test_service_account_gets_exactly_its_rbac(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str
) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-reader"),
            rules=[
                client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch"])
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
        ),
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="visible"), data={"a": "1"})
    )

    kubeconfig = control_plane.service_account_kubeconfig(namespace, "reader")
    sa_api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        sa_core = client.CoreV1Api(sa_api)
        # Who am I: the ServiceAccount, authenticated by its TokenRequest token.
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review(
            client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        )
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:reader"

        # Granted.
        names = [c.metadata.name for c in sa_core.list_namespaced_config_map(namespace).items]
        assert "visible" in names
        assert sa_core.read_namespaced_config_map("visible", namespace).data == {"a": "1"}

        # Not granted: another resource, another verb, another namespace, cluster scope.
        denied: list[Callable[[], Any]] = [
            lambda: sa_core.list_namespaced_secret(namespace),
            lambda: sa_core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope"))
            ),
            lambda: sa_core.delete_namespaced_config_map("visible", namespace),
            lambda: sa_core.list_namespaced_config_map("default"),
            lambda: sa_core.list_node(),
        ]
        for call in denied:
            with pytest.raises(ApiException) as info:
                call()
            assert info.value.status == 403
    finally:
        sa_api.close()

    # The same through kubectl with the ServiceAccount's kubeconfig.
    assert (
        kubectl(
            control_plane, "auth", "can-i", "list", "configmaps", "-n", namespace, kubeconfig=kubeconfig
        ).stdout.strip()
        == "yes"
    )
    res = kubectl(
        control_plane,
        "auth",
        "can-i",
        "create",
        "configmaps",
        "-n",
        namespace,
        kubeconfig=kubeconfig,
        check=False,
    )
    assert res.stdout.strip() == "no"
    res = kubectl(control_plane, "get", "secrets", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert res.returncode != 0 and "forbidden" in res.stderr.lower()


def test_service_account_tokens_are_mounted_for_pods(api: client.ApiClient, namespace: str) -> None:
    """Pods get the projected service-account token volume (token signing is configured)."""
    core = client.CoreV1Api(api)
    wait_for(
        "default ServiceAccount",
        lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
    )
    wait_for(
        "kube-root-ca.crt",
        lambda: (
            core.list_namespaced_config_map(namespace, field_selector="metadata.name=kube-root-ca.crt").items
        ),
    )
    pod = core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="p"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="main", image=PAUSE_IMAGE)]),
        ),
    )
    volumes = [v for v in pod.spec.volumes or [] if v.projected]
    assert volumes and any(s.service_account_token for s in volumes[0].projected.sources)


def test_helm_installs_a_chart(control_plane: ControlPlane, namespace: str, tmp_path: Any) -> None:
    """The pinned helm builds, installs (waiting for readiness) and uninstalls a chart."""

    def helm(*args: str) -> str:
        res = subprocess.run(
            [str(control_plane.helm), *args],
            env=control_plane.env(),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert res.returncode == 0, f"helm {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
        return res.stdout

    assert helm("version", "--short").startswith(control_plane.versions()["helm"])
    helm("create", "demo")  # the starter chart: Deployment, Service, ServiceAccount
    helm("lint", "demo")
    helm("install", "demo", "./demo", "-n", namespace, "--wait", "--timeout", "90s")
    status = json.loads(helm("status", "demo", "-n", namespace, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    helm("uninstall", "demo", "-n", namespace, "--wait")


def test_statefulset_with_volume_claims_becomes_ready(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str
) -> None:
    """Claims get the default StorageClass and bind to pre-created volumes; the Pods become Ready."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    control_plane.create_volumes(2, size="5Gi")
    labels = {"app": "db"}
    apps.create_namespaced_stateful_set(
        namespace,
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1StatefulSetSpec(
                replicas=2,
                service_name="db",
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(
                                name="main",
                                image=PAUSE_IMAGE,
                                volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
                            )
                        ]
                    ),
                ),
                volume_claim_templates=[
                    client.V1PersistentVolumeClaim(
                        metadata=client.V1ObjectMeta(name="data"),
                        spec=client.V1PersistentVolumeClaimSpec(
                            access_modes=["ReadWriteOnce"],
                            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
                        ),
                    )
                ],
            ),
        ),
    )
    wait_for(
        "2 ready StatefulSet pods",
        lambda: (
            len(
                [
                    p
                    for p in core.list_namespaced_pod(namespace, label_selector="app=db").items
                    if pod_ready(p)
                ]
            )
            == 2
        ),
    )
    claims = core.list_namespaced_persistent_volume_claim(namespace).items
    assert sorted(c.metadata.name for c in claims) == ["data-db-0", "data-db-1"]
    assert all(c.status.phase == "Bound" and c.spec.storage_class_name == "standard" for c in claims)
