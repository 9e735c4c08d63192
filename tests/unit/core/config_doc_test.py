#!/usr/bin/env python3
"""docs/configuration.md's tables of every flag / YAML key / environment
variable, checked against the binaries: every long flag of sonde-agent (all
subcommands) and sonde-server is in its table or in the "flags only" list;
every environment variable is the one the key maps to; every agent key is
known to the agent's loaders (`config check` does not call it unknown).
  config_doc_test.py <source dir> <sonde-agent> <sonde-server>"""
import os
import re
import subprocess
import sys
import tempfile

SRC, AGENT, SERVER = sys.argv[1:4]
doc = open(os.path.join(SRC, "docs", "configuration.md")).read()
failures = []


def section(title):
    start = doc.index(title)
    nxt = doc.find("\n### ", start + len(title))
    return doc[start: nxt if nxt != -1 else len(doc)]


def rows(text):
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("flag", "---"):
            flags = re.findall(r"`(--[a-z0-9-]+)", cells[0])
            key = re.search(r"`([a-z0-9_.]+)`", cells[1])
            env = re.search(r"`(SONDE_[A-Z0-9_]+)`", cells[2])
            out.append((flags, key.group(1) if key else None, env.group(1) if env else None))
    return out


def flags_only(text):
    para = text[text.rindex("lags only"):]
    return set(re.findall(r"`(--[a-z0-9-]+)`", para.split("\n\n")[0]))


def help_flags(argv):
    out = subprocess.run(argv + ["--help"], capture_output=True, text=True).stdout
    return {f for f in re.findall(r"(?:^|[\s,!])(--[a-z0-9][a-z0-9-]*)", out)} - {"--help"}


agent_text = section("### sonde-agent")
server_text = section("### sonde-server")
agent_rows, server_rows = rows(agent_text), rows(server_text)
if len(agent_rows) < 40 or len(server_rows) < 15:
    sys.exit(f"FAIL: tables not found ({len(agent_rows)} agent rows, {len(server_rows)} server rows)")

agent_flags = set()
for sub in ([], ["run"], ["capture"], ["otlp"], ["config", "check"], ["probe"]):
    agent_flags |= help_flags([AGENT] + sub)
documented = {f for r in agent_rows for f in r[0]} | flags_only(agent_text)
for f in sorted(agent_flags - documented):
    failures.append(f"sonde-agent {f} is not in docs/configuration.md's table")
for f in sorted({f for r in agent_rows for f in r[0]} - agent_flags):
    failures.append(f"docs list sonde-agent {f}, which the binary does not have")

for flags, key, env in agent_rows:
    if key is None:
        failures.append(f"agent row {flags} has no YAML key")
        continue
    want = "SONDE_" + key.replace(".", "_").upper()
    if env != want:
        failures.append(f"agent key {key}: environment variable {env}, want {want}")
    if flags and not set(flags) & agent_flags:
        continue  # the flag is not in this build (yet)
    section_name, _, leaf = key.rpartition(".")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(f"{section_name}:\n  {leaf}: 1\n" if section_name else f"{leaf}: 1\n")
        f.flush()
        r = subprocess.run([AGENT, "config", "check", f.name], capture_output=True, text=True)
        if "unknown" in (r.stdout + r.stderr):
            failures.append(f"agent key {key} ({flags}) is unknown to the loader: {r.stderr.strip()}")

server_flags = help_flags([SERVER])
documented = {f for r in server_rows for f in r[0]} | flags_only(server_text)
for f in sorted(server_flags - documented):
    failures.append(f"sonde-server {f} is not in docs/configuration.md's table")
for flags, key, env in server_rows:
    for fl in flags:
        if key != fl[2:].replace("-", "_") or env != "SONDE_" + fl[2:].replace("-", "_").upper():
            failures.append(f"server {fl}: key {key} / variable {env} do not follow the flag")
        if fl not in server_flags:
            failures.append(f"docs list sonde-server {fl}, which the binary does not have")

if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"PASS: {len(agent_rows)} agent settings, {len(server_rows)} server settings, "
      f"{len(agent_flags)} agent flags and {len(server_flags)} server flags documented")
