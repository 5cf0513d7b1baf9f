"""Checks the deploy files that can be checked without Docker or a cluster: every YAML
parses, and the compose and Kubernetes files have the shape operators rely on. Run by
.ci/run; exits non-zero naming the first problem."""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).parent


def fail(message: str) -> None:
    sys.exit(f"deploy check: {message}")


def merged(base: dict, overlay: dict) -> dict:
    """What `docker compose -f base -f overlay` runs, as far as these checks look: services
    merged key by key, maps merged, lists joined."""
    services = {name: dict(service) for name, service in base["services"].items()}
    for name, service in overlay["services"].items():
        target = services.setdefault(name, {})
        for key, value in service.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            elif isinstance(value, list) and isinstance(target.get(key), list):
                target[key] = target[key] + value
            else:
                target[key] = value
    return {"services": services}


def check_store_overlay(base: dict, overlay: dict, store: str, nodes: list) -> None:
    """Three replicas sharing one signing key, each waiting for every healthy store node and
    configured for that store."""
    compose = merged(base, overlay)
    replicas = [n for n in compose["services"] if n.startswith("gezinsdossier-")]
    if len(replicas) != 3:
        fail(f"compose ({store}): expected three replicas, found {replicas}")
    env_key = f"GEZINSDOSSIER_{store.upper()}__URL"
    for name in replicas:
        service = compose["services"][name]
        for node in nodes:
            if service.get("depends_on", {}).get(node, {}).get("condition") != "service_healthy":
                fail(f"compose ({store}): {name} must wait for {node} to be healthy")
        environment = service.get("environment", {})
        if env_key not in environment:
            fail(f"compose ({store}): {name} has no {env_key}")
        if "tls" not in environment[env_key] and "sslmode=require" not in environment[env_key]:
            fail(f"compose ({store}): {name} must reach the store over TLS")
        if store == "postgres" and (
            environment.get("GEZINSDOSSIER_POSTGRES__PASSWORD_FILE") != "/run/secrets/postgres_password"
            or "postgres_password" not in service.get("secrets", [])
        ):
            fail(f"compose (postgres): {name} must log in with the postgres_password secret")
        if "GEZINSDOSSIER_SIGNING_KEY" not in environment or "signing:/var/lib/gezinsdossier/signing" not in service.get(
            "volumes", []
        ):
            fail(f"compose ({store}): {name} must use the shared signing key volume")
    for node in nodes:
        if "healthcheck" not in compose["services"][node]:
            fail(f"compose ({store}): {node} needs a healthcheck")
    if store == "kurrentdb":
        seeds = {n: compose["services"][n]["environment"].get("KURRENTDB_GOSSIP_SEED", "") for n in nodes}
        for node, seed in seeds.items():
            if sorted(seed.split(",")) != sorted(f"{n}:2113" for n in nodes if n != node):
                fail(f"compose (kurrentdb): {node} must gossip with the other two nodes, has {seed!r}")
            if compose["services"][node]["environment"].get("KURRENTDB_CLUSTER_SIZE") != "3":
                fail(f"compose (kurrentdb): {node} must be configured for a three-node cluster")


def check_envoy(envoy: dict) -> None:
    """A gRPC-aware balancer that terminates mTLS, forwards only the certificate it verified,
    calls the replicas over mTLS with the gateway certificate and health-checks them."""
    listener = envoy["static_resources"]["listeners"][0]
    chain = listener["filter_chains"][0]
    downstream = chain["transport_socket"]["typed_config"]
    if not downstream.get("require_client_certificate"):
        fail("envoy: organisations must present client certificates")
    manager = chain["filters"][0]["typed_config"]
    if manager.get("forward_client_cert_details") != "SANITIZE_SET":
        fail("envoy: x-forwarded-client-cert must be replaced (SANITIZE_SET), never passed through from clients")
    if not manager["http_filters"] or not manager["http_filters"][-1]["name"].endswith("router"):
        fail("envoy: requests must be routed at L7 (HTTP/2), per request")
    cluster = envoy["static_resources"]["clusters"][0]
    upstream = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    if not upstream["tls_certificates"][0]["certificate_chain"]["filename"].endswith("gateway.crt"):
        fail("envoy: calls to replicas must use the registered gateway certificate")
    if "http2_protocol_options" not in str(cluster.get("typed_extension_protocol_options")):
        fail("envoy: replicas speak HTTP/2 (gRPC)")
    if not any("grpc_health_check" in hc for hc in cluster.get("health_checks", [])):
        fail("envoy: replicas must be health-checked over gRPC health")
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    if len(endpoints) != 3:
        fail(f"envoy: expected three replica endpoints, found {len(endpoints)}")


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

    base = docs["compose/compose.yaml"][0]
    for ref in ("gezinsdossier.toml", "envoy.yaml", "postgres_password.txt"):
        if not (ROOT / "compose" / ref).exists():
            fail(f"compose refers to missing file {ref}")
    check_store_overlay(base, docs["compose/compose.postgres.yaml"][0], "postgres", ["postgres"])
    check_store_overlay(
        base, docs["compose/compose.kurrentdb.yaml"][0], "kurrentdb", ["kurrentdb-1", "kurrentdb-2", "kurrentdb-3"]
    )

    check_envoy(docs["compose/envoy.yaml"][0])
    witness = base["services"].get("witness")
    if not witness or "gezinsdossier witness" not in " ".join(witness.get("command", [])):
        fail("compose: a witness service must run `gezinsdossier witness`")

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
    ignored = (ROOT.parent / ".dockerignore").read_text().split()
    for needed in ("target", "deploy/dev-certs", "**/*.key"):
        if needed not in ignored:
            fail(f".dockerignore must keep {needed} out of the build context")
    if kinds["Deployment"]["spec"]["template"]["spec"].get("enableServiceLinks") is not False:
        fail("k8s: set enableServiceLinks: false (service links land in GEZINSDOSSIER_*)")
    print(f"deploy check: {len(files)} YAML files parse; compose and k8s shapes hold")


if __name__ == "__main__":
    main()
