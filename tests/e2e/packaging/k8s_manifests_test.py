#!/usr/bin/env python3
"""Renders the Kubernetes kustomizations (deploy/k8s) with `kubectl kustomize`
and checks what an operator relies on: the agent's exact capability set
instead of `privileged` (and the privileged overlay), probes, resource
limits, the node name from the downward API, a content-hashed config that
rolls the DaemonSet when it changes, the ServiceMonitor reaching the agents'
metrics port, and that the shipped agent.yaml is accepted by the agent.
  k8s_manifests_test.py <source dir> <sonde-agent binary>
Exit 77 (skipped) when kubectl is missing, unless CI=true (then 1)."""
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

SRC, AGENT = sys.argv[1], sys.argv[2]
K8S = os.path.join(SRC, "deploy", "k8s")
AGENT_CAPS = {"BPF", "PERFMON", "NET_RAW", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_NICE"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def render(path):
    out = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"FAIL: kubectl kustomize {path}: {out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs, kind, name):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    failures.append(f"no {kind}/{name}")
    return None


def container(workload):
    return workload["spec"]["template"]["spec"]["containers"][0]


def check_probes_and_resources(workload, where):
    c = container(workload)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe in ("livenessProbe", "readinessProbe"):
        p = c.get(probe)
        if check(p is not None, f"{where}: no {probe}"):
            port = p["httpGet"]["port"]
            check(port in ports or port in ports.values(), f"{where}: {probe} port {port} is not a container port")
    res = c.get("resources", {})
    check("memory" in res.get("limits", {}), f"{where}: no memory limit")
    check("cpu" in res.get("limits", {}), f"{where}: no cpu limit")
    check({"cpu", "memory"} <= set(res.get("requests", {})), f"{where}: requests lack cpu/memory")
    check("/" in c["image"] and ":" in c["image"], f"{where}: image {c['image']} not a registry reference with tag")


def check_base(docs):
    for d in docs:
        if d["kind"] != "Namespace":
            check(d["metadata"].get("namespace") == "sonde", f"{d['kind']}/{d['metadata']['name']} not in namespace sonde")
    ds = find(docs, "DaemonSet", "sonde-agent")
    if ds is None:
        return
    spec = ds["spec"]["template"]["spec"]
    c = container(ds)
    sc = c.get("securityContext", {})
    check(not sc.get("privileged", False), "base agent is privileged")
    check(sc.get("allowPrivilegeEscalation") is False, "base agent allows privilege escalation")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], f"base agent does not drop ALL: {caps.get('drop')}")
    check(set(caps.get("add", [])) == AGENT_CAPS, f"base agent capabilities {caps.get('add')} != {sorted(AGENT_CAPS)}")
    check(spec.get("hostPID") is True and spec.get("hostNetwork") is True, "agent needs hostPID and hostNetwork")
    env = {e["name"]: e for e in c.get("env", [])}
    node = env.get("SONDE_NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    check(node == "spec.nodeName", f"SONDE_NODE_NAME not from the downward API: {node}")
    check_probes_and_resources(ds, "agent")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    check(mounts.get("/sys/kernel/tracing") == "tracefs", "agent does not mount the host's tracefs")
    check(volumes.get("tracefs", {}).get("hostPath", {}).get("type") == "Directory",
          "base tracefs must be an existing host directory (the agent cannot mount it)")
    # The config: a content-hashed ConfigMap, and the agent accepts its file.
    cm_name = volumes["config"]["configMap"]["name"]
    check(cm_name.startswith("sonde-agent-config-") and len(cm_name) > len("sonde-agent-config-"),
          f"agent config map {cm_name} carries no content hash")
    cm = find(docs, "ConfigMap", cm_name)
    if cm is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(cm["data"]["agent.yaml"])
            f.flush()
            r = subprocess.run([AGENT, "config", "check", f.name], capture_output=True, text=True)
            check(r.returncode == 0, f"agent rejects the DaemonSet's agent.yaml: {r.stdout}{r.stderr}")
        cfg = yaml.safe_load(cm["data"]["agent.yaml"])
        token_file = cfg.get("server", {}).get("token_file", "")
        check(any(token_file.startswith(p + "/") for p in mounts), f"token_file {token_file} is not mounted")
    # The Service the ServiceMonitor uses selects the agents' pods.
    svc = find(docs, "Service", "sonde-agent-metrics")
    if svc is not None:
        labels = ds["spec"]["template"]["metadata"]["labels"]
        check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
              "sonde-agent-metrics does not select the agent pods")
        check([p["targetPort"] for p in svc["spec"]["ports"]] == ["metrics"], "metrics service port")
    sts = find(docs, "StatefulSet", "sonde-server")
    if sts is not None:
        check_probes_and_resources(sts, "server")
        sc = container(sts).get("securityContext", {})
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], "server keeps capabilities")
        check(sts["spec"]["template"]["spec"]["securityContext"].get("runAsNonRoot") is True, "server runs as root")
        args = " ".join(container(sts)["args"])
        check("--token-file" in args and "--ui-token-file" in args,
              "server listens beyond loopback without tokens")


def check_config_rolls_pods():
    """Changing agent.yaml must change the DaemonSet's pod template."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "k8s")
        shutil.copytree(K8S, copy)
        before = find(render(os.path.join(copy, "base")), "DaemonSet", "sonde-agent")
        with open(os.path.join(copy, "base", "agent.yaml"), "a") as f:
            f.write("spans:\n  rate_limit: 100\n")
        after = find(render(os.path.join(copy, "base")), "DaemonSet", "sonde-agent")
        if before and after:
            check(before["spec"]["template"] != after["spec"]["template"],
                  "a changed agent.yaml leaves the DaemonSet's pod template unchanged (no rollout)")


def main():
    if shutil.which("kubectl") is None:
        if os.environ.get("CI") == "true":
            sys.exit("FAIL: prerequisite missing in CI: kubectl")
        print("SKIP: kubectl missing")
        sys.exit(77)
    base = render(os.path.join(K8S, "base"))
    check_base(base)
    check_config_rolls_pods()

    priv = render(os.path.join(K8S, "overlays", "privileged"))
    ds = find(priv, "DaemonSet", "sonde-agent")
    if ds is not None:
        sc = container(ds)["securityContext"]
        check(sc.get("privileged") is True, "privileged overlay is not privileged")
        check("capabilities" not in sc, "privileged overlay still lists capabilities")
        vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
        check(vols["tracefs"]["hostPath"]["type"] == "DirectoryOrCreate", "privileged overlay tracefs type")
    check(len(priv) == len(base), "privileged overlay adds or drops objects")

    mon = render(os.path.join(K8S, "overlays", "prometheus-operator"))
    sm = find(mon, "ServiceMonitor", "sonde-agent")
    svc = find(mon, "Service", "sonde-agent-metrics")
    if sm is not None and svc is not None:
        check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
        check(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
              "ServiceMonitor does not select sonde-agent-metrics")
        ports = {p["name"] for p in svc["spec"]["ports"]}
        check(all(e["port"] in ports for e in sm["spec"]["endpoints"]), "ServiceMonitor endpoint port not on the Service")
        check(sm["metadata"].get("namespace") == "sonde", "ServiceMonitor namespace")
    check(len(mon) == len(base) + 1, "prometheus-operator overlay should add exactly the ServiceMonitor")

    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print(f"PASS: base {len(base)} objects, privileged {len(priv)}, prometheus-operator {len(mon)}")


main()
