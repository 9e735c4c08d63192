#!/usr/bin/env python3
"""Static checks of deploy/docker/Dockerfile, which cannot be built here (no
registry access): every stage starts from this machine's Debian release (or
an earlier stage), every COPY source exists in the build context and is not
excluded by .dockerignore, every COPY --from names an earlier stage, every
apt package exists in Debian (apt-cache), the build stage installs every
build dependency of scripts/setup.sh, everything the top-level CMake build
and cmake/packaging.cmake read is copied, and the agent/server targets run
the binaries the packages install.
  dockerfile_test.py <source dir>"""
import fnmatch
import os
import re
import shlex
import subprocess
import sys

SRC = sys.argv[1]
DOCKERFILE = os.path.join(SRC, "deploy", "docker", "Dockerfile")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def instructions(path):
    """(keyword, argument text) per instruction, continuation lines joined."""
    out, cur = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        kw, _, rest = cur.strip().partition(" ")
        out.append((kw.upper(), rest.strip()))
        cur = ""
    return out


def os_codename():
    for line in open("/etc/os-release"):
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


def dockerignore_patterns():
    path = os.path.join(SRC, ".dockerignore")
    if not os.path.exists(path):
        return []
    return [l.strip().rstrip("/") for l in open(path) if l.strip() and not l.startswith("#")]


def ignored(rel, patterns):
    rel = rel.rstrip("/")
    for p in patterns:
        p = p.lstrip("/").replace("**/", "")
        if fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel.split("/")[0], p):
            return True
    return False


def setup_sh_build_packages():
    text = open(os.path.join(SRC, "scripts", "setup.sh")).read()
    block = text[text.index("PACKAGES=(") : text.index("# tests and benchmarks")]
    return {w for l in block.splitlines()[1:] if not l.strip().startswith("#") for w in l.split()}


def main():
    ins = instructions(DOCKERFILE)
    args = {}
    stages = []
    current = None
    stage_packages = {}
    copied = set()
    entrypoints = {}
    codename = os_codename()
    patterns = dockerignore_patterns()
    for kw, rest in ins:
        if kw == "ARG" and "=" in rest and current is None:
            k, v = rest.split("=", 1)
            args[k] = v
        elif kw == "FROM":
            m = re.match(r"(\S+)\s+AS\s+(\S+)", rest, re.I)
            check(m is not None, f"FROM without a stage name: {rest}")
            image = re.sub(r"\$\{(\w+)\}", lambda g: args.get(g.group(1), "?"), m.group(1))
            name, _, tag = image.partition(":")
            check(name in stages or (name == "debian" and tag in (codename, codename + "-slim")),
                  f"stage {m.group(2)} starts from {image}, not debian:{codename}[-slim]")
            current = m.group(2)
            stages.append(current)
            stage_packages[current] = set()
        elif kw == "COPY":
            words = shlex.split(rest)
            flags = [w for w in words if w.startswith("--")]
            srcs = [w for w in words if not w.startswith("--")][:-1]
            src_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if src_stage is not None:
                check(src_stage in stages[:-1], f"COPY --from={src_stage}: not an earlier stage")
                continue
            for s in srcs:
                check(os.path.exists(os.path.join(SRC, s)), f"COPY source {s} does not exist")
                check(not ignored(s, patterns), f"COPY source {s} is excluded by .dockerignore")
                copied.add(s.rstrip("/"))
        elif kw == "RUN":
            for cmd in re.split(r"&&|;", rest):
                words = cmd.split()
                if len(words) > 2 and words[0] == "apt-get" and "install" in words:
                    pkgs = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
                    stage_packages[current] |= {p for p in pkgs if "/" not in p}
                    for p in pkgs:
                        if "/" in p:  # a local .deb produced by an earlier stage
                            check(p.startswith("/tmp/packages/sonde-"), f"unexpected local package {p}")
        elif kw == "ENTRYPOINT":
            entrypoints[current] = rest

    check({"build", "agent", "server"} <= set(stages), f"stages {stages}: need build, agent, server")
    # Every apt package exists in Debian (this machine runs the same release).
    all_pkgs = set().union(*stage_packages.values())
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *sorted(all_pkgs)], capture_output=True, text=True)
    known = {l.split(":", 1)[1].strip() for l in r.stdout.splitlines() if l.startswith("Package:")}
    for p in sorted(all_pkgs - known):
        failures.append(f"apt package {p} unknown to apt-cache")
    missing = setup_sh_build_packages() - stage_packages.get("build", set())
    check(not missing, f"build stage lacks build dependencies from scripts/setup.sh: {sorted(missing)}")
    # Everything the build reads is in the context.
    top = open(os.path.join(SRC, "CMakeLists.txt")).read()
    for d in re.findall(r"^add_subdirectory\((\w+)\)", top, re.M):
        check(d in copied, f"top-level add_subdirectory({d}) is not copied")
    for f in re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([\w./-]+)", open(os.path.join(SRC, "cmake", "packaging.cmake")).read()):
        check(any(f == c or f.startswith(c + "/") for c in copied), f"packaging.cmake reads {f}, not copied")
    check("/usr/bin/sonde-agent" in entrypoints.get("agent", ""), "agent stage does not run /usr/bin/sonde-agent")
    check("/usr/bin/sonde-server" in entrypoints.get("server", ""), "server stage does not run /usr/bin/sonde-server")

    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print(f"PASS: stages {stages}, {len(all_pkgs)} apt packages known, {len(copied)} COPY sources present, "
          f"base debian:{codename}")


main()
