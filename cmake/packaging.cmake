# Debian packages: sonde-agent and sonde-server, one CPack component each.
#   cmake --build build --target sonde-agent sonde-server
#   (cd build && cpack -G DEB)         -> build/sonde-agent_<v>_<arch>.deb, build/sonde-server_<v>_<arch>.deb
# Layout (FHS, prefix /usr): /usr/bin/<binary>, /usr/lib/systemd/system/<unit>,
# /etc/sonde/agent.yaml, /etc/sonde/server.yaml and /etc/default/sonde-server
# (conffiles),
# /usr/share/doc/<package>/. Maintainer scripts live in deploy/debian/.
# The binaries get a second install(TARGETS) rule here, in a component of
# their own (the components' rules stay in "Unspecified", not packaged), so
# that CPACK_STRIP_FILES strips them.

# cpack (and `make install`) must not build "all" first: the package test runs
# cpack in the shared build tree, whose other targets may be mid-edit. Build
# sonde-agent and sonde-server before packaging.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# `--version` of both binaries prints the version the packages carry.
target_compile_definitions(sonde-agent PRIVATE SONDE_VERSION="${PROJECT_VERSION}")
target_compile_definitions(sonde-server PRIVATE SONDE_VERSION="${PROJECT_VERSION}")

set(SONDE_DEB_DIR ${CMAKE_SOURCE_DIR}/deploy/debian)
set(SONDE_DOCS_COMMON README.md)

# --- sonde-agent -------------------------------------------------------------
install(TARGETS sonde-agent RUNTIME DESTINATION bin COMPONENT agent)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/sonde-agent.service DESTINATION lib/systemd/system
        COMPONENT agent)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/agent.yaml DESTINATION /etc/sonde COMPONENT agent)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/deploy.md
              ${CMAKE_SOURCE_DIR}/docs/configuration.md ${CMAKE_SOURCE_DIR}/docs/otlp.md
              ${CMAKE_SOURCE_DIR}/docs/tcp-metrics.md ${CMAKE_SOURCE_DIR}/docs/profiling.md
              ${CMAKE_SOURCE_DIR}/docs/protocols.md
        DESTINATION share/doc/sonde-agent COMPONENT agent)
install(FILES ${SONDE_DEB_DIR}/copyright DESTINATION share/doc/sonde-agent COMPONENT agent)

# --- sonde-server ------------------------------------------------------------
install(TARGETS sonde-server RUNTIME DESTINATION bin COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/sonde-server.service DESTINATION lib/systemd/system
        COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/server.yaml DESTINATION /etc/sonde COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/sonde-server.default DESTINATION /etc/default
        RENAME sonde-server COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/deploy.md
              ${CMAKE_SOURCE_DIR}/docs/server.md ${CMAKE_SOURCE_DIR}/docs/ui.md
        DESTINATION share/doc/sonde-server COMPONENT server)
install(FILES ${SONDE_DEB_DIR}/copyright DESTINATION share/doc/sonde-server COMPONENT server)

# --- CPack -------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sonde)
set(CPACK_PACKAGE_VENDOR "Sonde")
set(CPACK_PACKAGE_CONTACT "Sonde maintainers <sonde@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL agent server)  # not "Unspecified" (the plain install(TARGETS) rules)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_STRIP_FILES ON)  # the RelWithDebInfo binaries carry ~80 MB of DWARF
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <package>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)   # Depends: from dpkg-shlibdeps (libbpf1, libgrpc++1.51, ...)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/sonde/sonde")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME sonde-agent)
set(CPACK_DEBIAN_AGENT_DESCRIPTION "Sonde node agent: eBPF capture of HTTP/1, HTTP/2, gRPC, Redis, PostgreSQL and DNS
 Captures socket traffic with eBPF (no code changes, no sidecar), builds spans
 and RED/TCP metrics, receives OTLP, profiles CPU and ships everything to
 sonde-server. Runs as the unprivileged user sonde-agent with CAP_BPF,
 CAP_PERFMON, CAP_NET_RAW, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.")
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
    ${SONDE_DEB_DIR}/agent/conffiles ${SONDE_DEB_DIR}/agent/postinst
    ${SONDE_DEB_DIR}/agent/prerm ${SONDE_DEB_DIR}/agent/postrm)
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME sonde-server)
set(CPACK_DEBIAN_SERVER_DESCRIPTION "Sonde server: trace and metric store, query API and web UI
 Receives spans, RED/TCP metrics and profiles from sonde-agent over gRPC,
 stores them in SQLite and serves the JSON API and the web UI.")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    ${SONDE_DEB_DIR}/server/conffiles ${SONDE_DEB_DIR}/server/postinst ${SONDE_DEB_DIR}/server/prerm
    ${SONDE_DEB_DIR}/server/postrm)
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
