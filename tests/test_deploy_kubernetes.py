"""The Kubernetes manifests (deploy/kubernetes), checked offline: there is no cluster here.

- Every built-in object is validated, strictly (no unknown field), against the Kubernetes
  OpenAPI schemas that PyPI ``kubernetes-validate`` ships, for the oldest and the newest version
  it has.
- The two custom resources (KEDA's ScaledObject, the Prometheus Operator's ServiceMonitor) have no
  schema in that package, and their CRDs are not fetched: each is validated against a schema
  written here for the part of its API the manifests use (from the KEDA v2 and
  prometheus-operator v1 API references), strict about unknown fields, plus the cross-checks
  below.
- Cross-checks against the rest of the project: probes on /healthz; the drain fits in the grace
  period (``GatewayConfig.graceful_timeout``); workers from the CPU limit; every ``WASMGATE_*``
  variable is a serve flag; the ports, user and writable paths are the image's (Dockerfile); the
  ConfigMap's modules.toml parses with wasmgate's own parser and names modules the image has;
  every metric named in a query is one the gateway exports; selectors and targets meet.
- With ``kubectl`` on the PATH (it embeds kustomize), the base and the example overlay are also
  rendered and their output validated the same way.
"""

from __future__ import annotations

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

from test_deploy_image import SERVE_VARIABLES, parse_dockerfile
from wasmgate.config import GatewayConfig
from wasmgate.gateway.metrics import GatewayMetrics
from wasmgate.wagi.manifest import parse_manifest

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
VERSIONS = [kubernetes_validate.utils.all_versions()[0], kubernetes_validate.latest_version()]
CUSTOM = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")}
LABELS = {"app.kubernetes.io/name": "wasmgate"}

Obj = dict[str, Any]


def _docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _objects() -> dict[Path, Obj]:
    out = {}
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        (doc,) = _docs(path)
        out[path] = doc
    return out


OBJECTS = _objects()


def _one(kind: str) -> Obj:
    (obj,) = [o for o in OBJECTS.values() if o["kind"] == kind]
    return obj


def _container() -> Obj:
    (c,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def _env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container["env"]}


def _runtime_env() -> dict[str, str]:
    _, stages = parse_dockerfile((ROOT / "Dockerfile").read_text())
    return stages[-1].env()


# --- schemas -----------------------------------------------------------------------------------


def test_every_file_is_in_a_kustomization() -> None:
    listed: set[Path] = set()
    for k in K8S.rglob("kustomization.yaml"):
        (doc,) = _docs(k)
        for entry in doc.get("resources", []):
            target = (k.parent / entry).resolve()
            if target.suffix == ".yaml":
                assert target.is_file(), f"{k}: {entry} does not exist"
                listed.add(target)
            else:
                assert (target / "kustomization.yaml").is_file(), f"{k}: {entry}"
        for entry in doc.get("components", []):
            assert (k.parent / entry / "kustomization.yaml").is_file(), f"{k}: {entry}"
    assert {p.resolve() for p in OBJECTS} == listed


BUILTIN = sorted(p for p, o in OBJECTS.items() if (o["apiVersion"], o["kind"]) not in CUSTOM)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: str(p.relative_to(K8S)))
def test_builtin_objects_match_the_kubernetes_schemas(path: Path, version: str) -> None:
    kubernetes_validate.validate(OBJECTS[path], version, strict=True)


def test_schemas_catch_a_mistake() -> None:
    """The validation is not vacuous: a misspelt field and a wrong type both fail."""
    deployment = json.loads(json.dumps(_one("Deployment")))
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    service = json.loads(json.dumps(_one("Service")))
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, VERSIONS[-1], strict=True)
    scaled = json.loads(json.dumps(_one("ScaledObject")))
    scaled["spec"]["minReplicas"] = 2  # HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, CUSTOM_SCHEMAS["ScaledObject"])


def _strict(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "required": required or [],
    }


_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STR, "labels": {"type": "object"}, "namespace": _STR},
}
CUSTOM_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _strict(
        {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": _META,
            "spec": _strict(
                {
                    "scaleTargetRef": _strict(
                        {"name": _STR, "kind": _STR, "apiVersion": _STR}, ["name"]
                    ),
                    "minReplicaCount": _INT,
                    "maxReplicaCount": _INT,
                    "pollingInterval": _INT,
                    "cooldownPeriod": _INT,
                    "idleReplicaCount": _INT,
                    "advanced": _strict(
                        {
                            "restoreToOriginalReplicaCount": {"type": "boolean"},
                            "horizontalPodAutoscalerConfig": _strict(
                                {"name": _STR, "behavior": {"type": "object"}}
                            ),
                        }
                    ),
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": _strict(
                            {
                                "type": {"enum": ["prometheus", "cpu", "memory"]},
                                "name": _STR,
                                "metricType": {"enum": ["Utilization", "AverageValue", "Value"]},
                                "metadata": {
                                    "type": "object",
                                    "additionalProperties": _STR,  # KEDA: strings only
                                },
                            },
                            ["type", "metadata"],
                        ),
                    },
                },
                ["scaleTargetRef", "triggers"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    "ServiceMonitor": _strict(
        {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _META,
            "spec": _strict(
                {
                    "selector": _strict({"matchLabels": {"type": "object"}}, ["matchLabels"]),
                    "namespaceSelector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": _strict(
                            {
                                "port": _STR,
                                "path": _STR,
                                "scheme": {"enum": ["http", "https"]},
                                "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                                "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"},
                            },
                            ["port"],
                        ),
                    },
                },
                ["selector", "endpoints"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
}


def test_custom_resources_match_their_schemas() -> None:
    seen = set()
    for obj in OBJECTS.values():
        if (obj["apiVersion"], obj["kind"]) in CUSTOM:
            jsonschema.validate(obj, CUSTOM_SCHEMAS[obj["kind"]])
            seen.add(obj["kind"])
    assert seen == {"ScaledObject", "ServiceMonitor"}
    for trigger in _one("ScaledObject")["spec"]["triggers"]:
        meta = trigger["metadata"]
        if trigger["type"] == "prometheus":
            assert {"serverAddress", "query", "threshold"} <= set(meta)
            assert float(meta["threshold"]) > 0
        if trigger["type"] == "cpu":
            assert 0 < int(meta["value"]) <= 100


# --- cross-checks ------------------------------------------------------------------------------


def test_probes_and_ports_are_the_gateway_s() -> None:
    c = _container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = _runtime_env()
    assert ports["http"] == int(env["WASMGATE_LISTEN"].rpartition(":")[2])
    assert ports["metrics"] == int(env["WASMGATE_METRICS_LISTEN"].rpartition(":")[2])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    # Liveness gives up later than readiness: a busy pod leaves the Service before any restart.
    live, ready = c["livenessProbe"], c["readinessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > (
        ready["periodSeconds"] * ready["failureThreshold"]
    )


def test_grace_period_covers_prestop_and_drain() -> None:
    spec = _one("Deployment")["spec"]["template"]["spec"]
    command = _container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    drain = GatewayConfig(modules_toml=Path("modules.toml")).graceful_timeout
    assert pre_stop >= 5, "endpoints need a few seconds to leave every proxy"
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + drain + 5


def test_workers_follow_the_cpu_limit() -> None:
    c = _container()
    ref = _env(c)["WASMGATE_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert ref == {"containerName": c["name"], "resource": "limits.cpu", "divisor": "1"}
    assert c["resources"]["limits"]["cpu"]
    assert c["resources"]["requests"]["cpu"]
    assert c["resources"]["limits"]["memory"]


def test_variables_are_serve_flags() -> None:
    names = set(_env(_container()))
    assert names <= SERVE_VARIABLES, names - SERVE_VARIABLES


def test_runs_as_the_image_user_on_a_read_only_root() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    c = _container()
    _, stages = parse_dockerfile((ROOT / "Dockerfile").read_text())
    uid, _, gid = stages[-1].all("USER")[-1].partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(uid),
        int(gid),
    )
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    (volumes,) = stages[-1].all("VOLUME")
    for path in json.loads(volumes):
        assert path in mounts, f"{path} is written at run time but not a volume"
        assert not mounts[path].get("readOnly", False)


def test_configmap_is_a_modules_toml_for_the_image() -> None:
    c = _container()
    config_path = Path(_env(c)["WASMGATE_MODULES_TOML"]["value"])
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in _one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    cm = _one("ConfigMap")
    assert volumes[mount["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    # The image serves the app from /srv/wasmgate: here, the example app it is built from
    # (the parser checks that every module file exists).
    srv = Path(_runtime_env()["WASMGATE_MODULES_TOML"]).parent
    examples = ROOT / "examples" / "wagi"
    subprocess.run([sys.executable, str(examples / "build.py")], check=True, capture_output=True)
    text = cm["data"][config_path.name].replace(f"{srv}/", f"{examples}/")
    assert str(srv) not in text, "a path under the app folder not written as a folder/file"
    manifest = parse_manifest(text, base_dir=config_path.parent, source=config_path.name)
    assert not manifest.warnings
    example = parse_manifest((examples / "modules.toml").read_text(), base_dir=examples)
    image_modules = {spec.module_path.name for spec in example.modules}
    assert [s.route.text for s in manifest.modules] == [s.route.text for s in example.modules]
    for spec in manifest.modules:
        assert spec.module_path.parent == examples, spec.label
        assert spec.module_path.name in image_modules, spec.label
        for volume in spec.volumes:
            assert volume.read_only, f"{spec.label}: the image's files are read-only"
            assert Path(volume.host).is_relative_to(examples)
        # Egress is DNS only (networkpolicy.yaml): no module may need outbound HTTP.
        assert not spec.allowed_hosts, spec.label


def test_network_policy_limits_egress_to_dns() -> None:
    policy = _one("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == LABELS
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ports = [p for rule in policy["egress"] for p in rule["ports"]]
    assert {p["port"] for p in ports} == {53}
    container_ports = {p["name"] for p in _container()["ports"]}
    for rule in policy["ingress"]:
        assert {p["port"] for p in rule["ports"]} <= container_ports


def test_selectors_and_targets_meet() -> None:
    deployment = _one("Deployment")
    name = deployment["metadata"]["name"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = _one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"] for p in _container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels.items()
    )
    hpa = _one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["minReplicas"] >= 2, "one pod left by the PodDisruptionBudget"
    assert _one("ScaledObject")["spec"]["scaleTargetRef"]["name"] == name
    assert _one("ScaledObject")["spec"]["minReplicaCount"] == hpa["minReplicas"]
    monitor = _one("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["endpoints"]} <= service_ports
    sa = _one("ServiceAccount")["metadata"]["name"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa


def _exported_samples() -> set[str]:
    names = set()
    for family in GatewayMetrics().registry.collect():
        names.add(family.name)
        kind = family.type
        if kind == "counter":
            names.add(family.name + "_total")
        if kind == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def test_queries_name_metrics_the_gateway_exports() -> None:
    exported = _exported_samples()
    assert "wasmgate_requests_total" in exported
    queries = [
        t["metadata"]["query"]
        for t in _one("ScaledObject")["spec"]["triggers"]
        if t["type"] == "prometheus"
    ]
    assert queries
    for query in queries:
        used = set(re.findall(r"\bwasmgate_\w+", query))
        assert used
        assert used <= exported, used - exported
        # The service label the ServiceMonitor's targets get is the Service's name.
        assert f'service="{_one("Service")["metadata"]["name"]}"' in query


# --- rendered by kustomize ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["base", "overlays/example"])
def test_kustomize_output_is_valid(target: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    proc = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = sorted(d["kind"] for d in rendered)
    for obj in rendered:
        key = (obj["apiVersion"], obj["kind"])
        if key in CUSTOM:
            jsonschema.validate(obj, CUSTOM_SCHEMAS[obj["kind"]])
        else:
            kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)
    if target == "base":
        assert kinds == sorted(o["kind"] for p, o in OBJECTS.items() if p.parent.name == "base")
    else:
        # KEDA's component replaces the CPU HPA with the ScaledObject (which brings its own).
        assert "HorizontalPodAutoscaler" not in kinds
        assert {"ScaledObject", "ServiceMonitor", "Namespace"} <= set(kinds)
        assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {
            "wasmgate"
        }
        (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "registry.example.com/wasmgate:0.1.0"
