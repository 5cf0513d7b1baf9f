"""Checks the deploy files that can be checked without Docker or a cluster: every YAML
parses, and the compose and Kubernetes files have the shape operators rely on. Run by
.ci/run; exits non-zero naming the first problem."""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).parent


def fail(message: str) -> None:
    sys.exit(f"deploy check: {message}")


def main() -> None:
    files = sorted(ROOT.rglob("*.yaml"))
    if not files:
        fail("no YAML files found")
    docs = {}
    for path in files:
        try:
            docs[path.relative_to(ROOT).as_posix()] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as e:
            fail(f"{path}: {e}")

    compose = docs["compose/compose.postgres.yaml"][0]
    replicas = [n for n in compose["services"] if n.startswith("gezinsdossier-")]
    if len(replicas) != 3:
        fail(f"compose: expected three replicas, found {replicas}")
    for name in replicas:
        service = compose["services"][name]
        if "postgres" not in service.get("depends_on", {}):
            fail(f"compose: {name} must wait for postgres")
        if "GEZINSDOSSIER_POSTGRES__URL" not in service.get("environment", {}):
            fail(f"compose: {name} has no database URL")
    if "healthcheck" not in compose["services"]["postgres"]:
        fail("compose: postgres needs a healthcheck")
    for ref in ("gezinsdossier.toml", "envoy.yaml", "postgres_password.txt"):
        if not (ROOT / "compose" / ref).exists():
            fail(f"compose refers to missing file {ref}")

    kinds = {d["kind"]: d for d in docs["k8s/gezinsdossier.yaml"]}
    for kind in ("Deployment", "PodDisruptionBudget", "Service", "ConfigMap", "Secret"):
        if kind not in kinds:
            fail(f"k8s: no {kind}")
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        if "health" not in container.get(probe, {}).get("exec", {}).get("command", []):
            fail(f"k8s: {probe} must use gRPC health")
    if not kinds["Deployment"]["spec"]["template"]["spec"]["securityContext"].get("runAsNonRoot"):
        fail("k8s: pods must run as non-root")
    print(f"deploy check: {len(files)} YAML files parse; compose and k8s shapes hold")


if __name__ == "__main__":
    main()
