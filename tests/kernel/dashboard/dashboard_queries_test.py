#!/usr/bin/env python3
"""Every PromQL query of deploy/kong/grafana-dashboard.json, executed against a
real Prometheus scraping a real sonde-agent that watches real traffic (curl
-> nginx -> nginx backend with 200/404/500 answers, a new upstream connection
per request, TCP health on): each must
succeed and return at least one series with a number (not NaN), and the
dashboard's service variable must list nginx.
  dashboard_queries_test.py <source dir> <sonde-agent>
Exit 77 (skipped) when a prerequisite is missing, unless CI=true (then 1)."""
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SRC, AGENT = sys.argv[1], sys.argv[2]


def prereq(ok, what):
    if ok:
        return
    if os.environ.get("CI") == "true":
        sys.exit(f"FAIL: prerequisite missing in CI: {what}")
    print(f"SKIP: {what}")
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for(url, seconds):
    end = time.time() + seconds
    while time.time() < end:
        try:
            get(url, 1)
            return True
        except Exception:
            time.sleep(0.2)
    return False


prereq(os.geteuid() == 0, "root (BPF)")
for tool in ("prometheus", "nginx", "curl"):
    prereq(shutil.which(tool) is not None, tool)
prereq(os.access(AGENT, os.X_OK), "sonde-agent binary")

dashboard = json.load(open(os.path.join(SRC, "deploy", "kong", "grafana-dashboard.json")))
queries = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
assert len(queries) >= 10, queries

work = tempfile.mkdtemp(prefix="sonde-dashboard-")
procs = []
failures = []
try:
    web, backend, metrics, prom = free_port(), free_port(), free_port(), free_port()
    # nginx as a gateway: the front server proxies to a backend server block
    # (a new upstream connection per request), so nginx has server spans,
    # client spans and TCP handshakes on both sides. The agent watches only
    # nginx's processes: other tests' sockets on a shared machine must not
    # crowd its TCP table.
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(f"""daemon off; pid {work}/nginx.pid; error_log {work}/error.log; worker_processes 1;
events {{}}
http {{ access_log {work}/access.log; client_body_temp_path {work}; proxy_temp_path {work};
  fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen 127.0.0.1:{web}; location / {{ proxy_pass http://127.0.0.1:{backend}; }} }}
  server {{ listen 127.0.0.1:{backend};
    location /ok {{ return 200 "ok\\n"; }} location /fail {{ return 500; }} location / {{ return 404; }} }} }}
""")
    nginx = subprocess.Popen(["nginx", "-p", work, "-c", f"{work}/nginx.conf"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(nginx)
    workers = []
    end = time.time() + 10
    while not workers and time.time() < end:
        time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(nginx.pid)], capture_output=True, text=True).stdout.split()
    if not workers:
        sys.exit("FAIL: nginx did not start: " + open(f"{work}/error.log").read()[-2000:])
    pid_flags = [a for w in [str(nginx.pid)] + workers for a in ("--pid", w)]
    agent_log = open(f"{work}/agent.log", "w")
    procs.append(subprocess.Popen([AGENT, "run", "--no-otlp", "--no-json", *pid_flags, "--tcp-health",
                                   "--metrics-listen", f"127.0.0.1:{metrics}", "--ready-file", f"{work}/ready"],
                                  stdout=agent_log, stderr=agent_log))
    with open(f"{work}/prometheus.yml", "w") as f:
        f.write(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: sonde-agent
    static_configs: [{{targets: ["127.0.0.1:{metrics}"]}}]
""")
    procs.append(subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml",
                                   f"--storage.tsdb.path={work}/tsdb", f"--web.listen-address=127.0.0.1:{prom}"],
                                  stdout=subprocess.DEVNULL, stderr=open(f"{work}/prometheus.log", "w")))
    end = time.time() + 30
    while not os.path.exists(f"{work}/ready") and time.time() < end:
        time.sleep(0.2)
    if not os.path.exists(f"{work}/ready"):
        sys.exit("FAIL: agent not ready: " + open(f"{work}/agent.log").read()[-2000:])
    if not wait_for(f"http://127.0.0.1:{prom}/-/ready", 30):
        sys.exit("FAIL: prometheus not ready: " + open(f"{work}/prometheus.log").read()[-2000:])

    # Steady traffic for ~20 s so every rate() window has samples: a new
    # connection per request (handshakes), some 404s and 500s.
    sent = 0
    end = time.time() + 20
    while time.time() < end:
        for path in ("/ok", "/ok", "/ok", "/missing", "/fail"):
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{web}{path}"], check=True)
            sent += 1
        time.sleep(0.1)
    time.sleep(3)  # last scrapes

    values = get(f"http://127.0.0.1:{prom}/api/v1/label/service_name/values?" +
                 urllib.parse.urlencode({"match[]": "http_server_request_duration_seconds_count"}))
    if "nginx" not in json.loads(values)["data"]:
        failures.append(f"the service variable does not list nginx: {values}")
    for title, expr in queries:
        q = expr.replace("$__rate_interval", "30s").replace("$service", ".*")
        body = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})))
        if body.get("status") != "success":
            failures.append(f"{title}: {q}: {body}")
            continue
        result = body["data"]["result"]
        numbers = [float(r["value"][1]) for r in result if not math.isnan(float(r["value"][1]))]
        if not numbers:
            failures.append(f"{title}: {q}: no data ({len(result)} series, all NaN or none)")
        else:
            print(f"ok  {len(result):4d} series  {title}: {q[:90]}")
finally:
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)

if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"PASS: {len(queries)} dashboard queries returned data ({sent} requests sent)")
