"""Renders the Helm chart (helm-python-sdk, Helm v4 as a library) with several value sets, lints
it, validates every manifest strictly against the Kubernetes schemas (kubernetes-validate), and
checks what the chart promises: probes, a restrictive security context, secrets only by
reference, one Recreate scheduler, the migrate Job as a pre-install/pre-upgrade hook.

Nothing is applied to a cluster: there is none to be had here.
Run: $VENV/bin/python scripts/check-chart.py  (the CI runs it from .ci/containers.sh)
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python
import yaml

CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "labs"
KUBERNETES_VERSION = "1.30"

VARIANTS = {
    "defaults": {},
    "fixed-replicas": {
        "roles": {
            "api": {"autoscaling": {"enabled": False}},
            "worker": {"autoscaling": {"enabled": False}},
        },
        "ingress": {"host": "", "tlsSecret": ""},
        "trustedProxies": ["10.244.0.0/16", "fd00:10:244::/56"],
    },
    "minimal": {
        "roles": {
            "worker": {"enabled": False},
            "scheduler": {"enabled": False},
            "hooks": {"enabled": False},
        },
        "migrate": {"enabled": False},
        "ingress": {"enabled": False},
        "serviceAccount": {"create": False},
    },
}

ROLES = {"api", "hooks", "worker", "scheduler"}
INGRESS_PATHS = ["/api", "/hooks"]

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def render(values):
    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(values=values, name="demo")
    documents = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            documents += [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


def containers(doc):
    return doc["spec"]["template"]["spec"]["containers"]


def check_workload(doc, variant):
    name = f"{variant}: {doc['kind']}/{doc['metadata']['name']}"
    pod = doc["spec"]["template"]["spec"]
    check(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
    check(pod.get("automountServiceAccountToken") is False, f"{name}: no service account token")
    for container in containers(doc):
        security = container["securityContext"]
        check(security.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
        check(security.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
        check(security.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: all capabilities dropped")
        check("requests" in container.get("resources", {}), f"{name}: resource requests")
        for entry in container.get("env", []):
            check("value" not in entry or not entry["name"].endswith("_URL"), f"{name}: {entry['name']} inlined")
    if doc["kind"] == "Deployment":
        container = containers(doc)[0]
        check(container["livenessProbe"]["httpGet"]["path"] == "/health/live", f"{name}: liveness probe")
        check(container["readinessProbe"]["httpGet"]["path"] == "/health/ready", f"{name}: readiness probe")
        role = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        check(container["args"] == ["serve", "--role", role], f"{name}: runs its role")
        if role == "scheduler":
            check(doc["spec"].get("replicas") == 1, f"{name}: one scheduler")
            check(doc["spec"]["strategy"]["type"] == "Recreate", f"{name}: Recreate")


def main():
    chart_lint = helm_python.lint(str(CHART))
    print(f"helm lint: {chart_lint}")
    for variant, values in VARIANTS.items():
        documents = render(values)
        kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents)
        print(f"{variant}: {len(documents)} manifests: {', '.join(kinds)}")
        for doc in documents:
            if doc["kind"] in ("Deployment", "Job"):
                check_workload(doc, variant)
            if doc["kind"] == "Job":
                hooks = doc["metadata"]["annotations"]["helm.sh/hook"]
                check(hooks == "pre-install,pre-upgrade", f"{variant}: migrate Job is a pre-install/pre-upgrade hook")
        # Only the ingress controller is a trusted proxy, and only once named (values.yaml).
        configmap = next(d for d in documents if d["kind"] == "ConfigMap")
        trusted = configmap["data"].get("LABS_TRUSTED_PROXIES")
        wanted = "10.244.0.0/16,fd00:10:244::/56" if variant == "fixed-replicas" else "127.0.0.1/32,::1/128"
        check(trusted == wanted, f"{variant}: LABS_TRUSTED_PROXIES {trusted!r}")
        if variant == "defaults":
            present = {d["kind"] for d in documents}
            for kind in ("Deployment", "Service", "Ingress", "Job", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"):
                check(kind in present, f"defaults: a {kind}")
            deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in documents if d["kind"] == "Deployment"}
            check(deployments == ROLES, f"defaults: deployments {deployments}")
        if variant == "fixed-replicas":
            ingress = next(d for d in documents if d["kind"] == "Ingress")
            paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
            check(paths == INGRESS_PATHS, f"ingress paths {paths}")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
            yaml.safe_dump_all(documents, out)
        result = subprocess.run(
            [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, out.name],
            capture_output=True, text=True,
        )
        errors = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "ERROR" in line]
        check(result.returncode == 0 and not errors, f"{variant}: kubernetes-validate: {errors or result.stderr.strip()}")
    if failures:
        print("chart check FAILED:")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("chart check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
