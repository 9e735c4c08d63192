#!/usr/bin/env python3
"""deploy/kong/: the decK state is valid decK for Kong 3.x as far as can be
checked without Kong (no Kong or decK on this machine): _format_version,
the opentelemetry and prometheus plugins with the fields docs/kong.md
promises, only decK's ${{ env "DECK_*" }} substitution (the shell-style
${VAR} the old docs/otlp.md snippet used is not decK), every DECK_ variable
documented, the endpoint on the agent's OTLP/HTTP path; Kong's tracing
prerequisites in kong-tracing.conf.
  kong_deck_test.py <source dir>"""
import os
import re
import sys

import yaml

SRC = sys.argv[1]
KONG = os.path.join(SRC, "deploy", "kong")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


text = open(os.path.join(KONG, "kong.yaml")).read()
subs = re.findall(r"\$\{[^}]*\}+", text)
for s in subs:
    check(re.fullmatch(r'\$\{\{ env "DECK_[A-Z0-9_]+" \}\}', s) is not None, f"not decK substitution syntax: {s}")
check(re.search(r"(?<!\$\{)\$[A-Z{(]", text.replace("${{", "")) is None, "shell-style variable in kong.yaml")
variables = sorted(set(re.findall(r'env "(DECK_[A-Z0-9_]+)"', text)))
check(variables, "no DECK_ variables")
# decK substitutes before parsing; do the same with sample values.
state = yaml.safe_load(re.sub(r'\$\{\{ env "(DECK_[A-Z0-9_]+)" \}\}', lambda m: f"http://127.0.0.1:4318" if
                              m.group(1).endswith("ENDPOINT") else "token", text))
check(state.get("_format_version") == "3.0", "_format_version must be \"3.0\"")
plugins = {p["name"]: p.get("config", {}) for p in state.get("plugins", [])}
check(set(plugins) >= {"opentelemetry", "prometheus"}, f"plugins: {sorted(plugins)}")
otel = plugins.get("opentelemetry", {})
check(otel.get("traces_endpoint") == "http://127.0.0.1:4318/v1/traces", f"traces_endpoint {otel.get('traces_endpoint')}")
check(otel.get("logs_endpoint", "").endswith("/v1/logs"), "logs_endpoint")
check(otel.get("resource_attributes", {}).get("service.name") == "kong", "resource_attributes.service.name")
prop = otel.get("propagation", {})
check(prop.get("default_format") == "w3c" and "w3c" in prop.get("inject", []), f"propagation {prop}")
check("endpoint" not in otel, "the pre-3.8 'endpoint' field alongside traces_endpoint")
prom = plugins.get("prometheus", {})
for k in ("status_code_metrics", "latency_metrics", "bandwidth_metrics", "upstream_health_metrics"):
    check(prom.get(k) is True, f"prometheus.{k}")

conf = open(os.path.join(KONG, "kong-tracing.conf")).read()
settings = dict(re.findall(r"^\s*([a-z_]+)\s*=\s*(\S+)", conf, re.M))
check(settings.get("tracing_instrumentations") == "all", "tracing_instrumentations = all")
check(settings.get("tracing_sampling_rate") == "1.0", "tracing_sampling_rate = 1.0")

docs = open(os.path.join(SRC, "docs", "kong.md")).read() + open(os.path.join(SRC, "docs", "otlp.md")).read()
for v in variables:
    check(v in docs, f"{v} is not documented in docs/kong.md or docs/otlp.md")
otlp_md = open(os.path.join(SRC, "docs", "otlp.md")).read()
check("${SONDE_" not in otlp_md, "docs/otlp.md still shows shell-style ${SONDE_...} in a decK snippet")

if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"PASS: decK state with {sorted(plugins)}, variables {variables}, Kong tracing settings")
