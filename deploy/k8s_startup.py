"""Starts the built binary the way deploy/k8s/gezinsdossier.yaml makes Kubernetes start it,
without a cluster: the Deployment's args and env, its Secret and ConfigMap volumes mounted
(under a temporary root), the service-link variables Kubernetes injects for the Service
(even though the manifest turns them off, so the loader is proven to cope), and then the
Deployment's own readiness and liveness probe commands, which must pass. Run by .ci/run
after the tests have built target/debug/gezinsdossier.

What cannot be the cluster's is swapped, and only that: the Secret's example database URL
becomes the local PostgreSQL (a schema of its own, dropped after), empty Secrets are filled
with generated development material, the port is a free one, and /etc/gezinsdossier lies
under the temporary root."""

import base64
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import yaml

ROOT = pathlib.Path(__file__).parent
BINARY = ROOT.parent / "target" / "debug" / "gezinsdossier"
DATABASE = os.environ.get("GZD_TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/test")
ETC = "/etc/gezinsdossier"


def fail(message: str) -> None:
    sys.exit(f"kubernetes start-up check: {message}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, **kwargs) -> str:
    done = subprocess.run([str(BINARY), *args], capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        fail(f"`gezinsdossier {' '.join(args)}` failed: {done.stderr.strip()[:500]}")
    return done.stdout


def service_links(service: dict) -> dict:
    """What the kubelet injects for a Service (pkg/kubelet/envvars), at a made-up cluster IP."""
    name = service["metadata"]["name"].upper().replace("-", "_")
    ip = "10.96.0.10"
    ports = service["spec"]["ports"]
    first = ports[0]
    env = {
        f"{name}_SERVICE_HOST": ip,
        f"{name}_SERVICE_PORT": str(first["port"]),
        f"{name}_PORT": f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}",
    }
    for port in ports:
        proto = port.get("protocol", "TCP")
        prefix = f"{name}_PORT_{port['port']}_{proto}"
        env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        env[prefix] = f"{proto.lower()}://{ip}:{port['port']}"
        env[f"{prefix}_PROTO"] = proto.lower()
        env[f"{prefix}_PORT"] = str(port["port"])
        env[f"{prefix}_ADDR"] = ip
    return env


def main() -> None:
    if not BINARY.exists():
        fail(f"{BINARY} is missing: run `cargo test --workspace` (or `cargo build`) first")
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s" / "gezinsdossier.yaml").read_text()) if d]
    by_kind = lambda kind: {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}  # noqa: E731
    config_maps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    (deployment,) = by_kind("Deployment").values()
    (service,) = by_kind("Service").values()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    root = pathlib.Path(tempfile.mkdtemp(prefix="gzd-k8s-"))
    local = lambda text: text.replace(ETC, f"{root}{ETC}")  # noqa: E731
    port = free_port()
    dev = root / "dev-ca"
    run("dev-ca", "--out", str(dev))
    signing = root / "treehead.key"
    run("keys", "new-signing-key", str(signing))
    generated = {
        ("gezinsdossier-tls", "tls.crt"): (dev / "server.crt").read_bytes(),
        ("gezinsdossier-tls", "tls.key"): (dev / "server.key").read_bytes(),
        ("gezinsdossier-tls", "ca.crt"): (dev / "ca.crt").read_bytes(),
        ("gezinsdossier-registry", "organisations.toml"): (dev / "organisations.toml").read_bytes(),
        ("gezinsdossier-signing-key", "treehead.key"): signing.read_bytes(),
        ("gezinsdossier-kek", "kek.hex"): run("keys", "new-kek").encode(),
    }

    # Volumes, mounted read-only like Secret and ConfigMap volumes (files 0644 and 0600 are
    # Kubernetes' defaults for them; the keys get 0600 here, as defaultMode would set).
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            files = {k: v.encode() for k, v in config_maps[volume["configMap"]["name"]]["data"].items()}
        else:
            name = volume["secret"]["secretName"]
            secret = secrets[name]
            files = {k: v.encode() for k, v in secret.get("stringData", {}).items()}
            files.update({k: base64.b64decode(v) for k, v in secret.get("data", {}).items()})
            files = {k: (v if v.strip() else generated[(name, k)]) for k, v in files.items()}
        for file, content in files.items():
            if file.endswith(".toml") and "configMap" in volume:
                content = local(content.decode()).replace("0.0.0.0:50051", f"127.0.0.1:{port}").encode()
            (target / file).write_bytes(content)
            (target / file).chmod(0o600 if file.endswith((".key", ".hex")) else 0o644)
        target.chmod(0o555)

    # The Deployment's env, with secretKeyRefs resolved; then the service links.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEZINSDOSSIER_")}
    schema = f"k8s_{uuid.uuid4().hex[:12]}"
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = local(var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
    if "GEZINSDOSSIER_POSTGRES__URL" not in env:
        fail("the Deployment no longer sets GEZINSDOSSIER_POSTGRES__URL; update this check")
    env["GEZINSDOSSIER_POSTGRES__URL"] = DATABASE
    env["GEZINSDOSSIER_POSTGRES__SCHEMA"] = schema
    # The local server speaks no TLS; the manifest's CA variable is for the cluster's one.
    env.pop("GEZINSDOSSIER_POSTGRES__TLS_CA_FILE", None)
    env.update(service_links(service))
    # readOnlyRootFilesystem: the working directory is not writable either.
    workdir = root / "readonly"
    workdir.mkdir()
    workdir.chmod(0o555)

    args = [local(a) for a in container["args"]]
    server = subprocess.Popen([str(BINARY), *args], env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        probe = lambda p: [local(a).replace("localhost:50051", f"localhost:{port}") for a in p["exec"]["command"]]  # noqa: E731
        readiness, liveness = probe(container["readinessProbe"]), probe(container["livenessProbe"])
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                fail(f"the server exited with {server.returncode}:\n{server.stdout.read()[-3000:]}")
            ok = subprocess.run([str(BINARY), *readiness[1:]], capture_output=True, env=env, cwd=workdir)
            if ok.returncode == 0:
                break
            if time.monotonic() > deadline:
                fail(f"readiness never passed: {ok.stderr.decode()[-500:]}")
            time.sleep(container["readinessProbe"].get("periodSeconds", 5) / 10)
        if subprocess.run([str(BINARY), *liveness[1:]], capture_output=True, env=env, cwd=workdir).returncode != 0:
            fail("liveness failed on a ready server")
        server.send_signal(signal.SIGTERM)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        try:
            code = server.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            fail(f"the server did not stop within terminationGracePeriodSeconds ({grace} s)")
        if code != 0:
            fail(f"the server exited with {code} on SIGTERM:\n{server.stdout.read()[-3000:]}")
        print(f"kubernetes start-up check: ready, alive and stopped cleanly ({len(service_links(service))} service-link variables injected)")
    finally:
        if server.poll() is None:
            server.kill()
        for path in root.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        root.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["psql", DATABASE, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], capture_output=True)


if __name__ == "__main__":
    main()
