# BPF build: vmlinux.h from the running kernel's BTF (generated, never committed),
# clang -target bpf, bpftool gen skeleton.
find_program(BPFTOOL bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)
find_program(BPF_CLANG clang REQUIRED)

set(SONDE_VMLINUX_DIR ${CMAKE_BINARY_DIR}/bpf/vmlinux)
set(SONDE_VMLINUX_H ${SONDE_VMLINUX_DIR}/vmlinux.h)
set(SONDE_BTF_SOURCE /sys/kernel/btf/vmlinux CACHE FILEPATH "Kernel BTF used to generate vmlinux.h")
if(NOT EXISTS ${SONDE_VMLINUX_H})
  if(NOT EXISTS ${SONDE_BTF_SOURCE})
    message(FATAL_ERROR "No kernel BTF at ${SONDE_BTF_SOURCE}: CONFIG_DEBUG_INFO_BTF is required")
  endif()
  file(MAKE_DIRECTORY ${SONDE_VMLINUX_DIR})
  execute_process(COMMAND ${BPFTOOL} btf dump file ${SONDE_BTF_SOURCE} format c
                  OUTPUT_FILE ${SONDE_VMLINUX_H} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(REMOVE ${SONDE_VMLINUX_H})
    message(FATAL_ERROR "bpftool btf dump failed (${rc})")
  endif()
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(SONDE_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(SONDE_BPF_ARCH arm64)
else()
  set(SONDE_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

# sonde_add_bpf_object(<name> <source.bpf.c>)
# Produces <name>.bpf.o and <name>.skel.h and an INTERFACE target sonde_bpf_<name>
# that carries the skeleton include directory.
function(sonde_add_bpf_object name source)
  set(out_dir ${CMAKE_BINARY_DIR}/bpf/${name})
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  file(MAKE_DIRECTORY ${out_dir})
  file(GLOB_RECURSE bpf_headers ${CMAKE_SOURCE_DIR}/bpf/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -target bpf -g -O2 -Wall -Wno-unused-function
            -D__TARGET_ARCH_${SONDE_BPF_ARCH}
            -I${SONDE_VMLINUX_DIR} -I${CMAKE_SOURCE_DIR}/bpf/include -I${CMAKE_SOURCE_DIR}/bpf
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${source} ${bpf_headers} ${SONDE_VMLINUX_H}
    COMMENT "BPF ${name}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}")
  add_custom_target(sonde_bpf_${name}_gen DEPENDS ${skel})
  add_library(sonde_bpf_${name} INTERFACE)
  add_dependencies(sonde_bpf_${name} sonde_bpf_${name}_gen)
  target_include_directories(sonde_bpf_${name} INTERFACE ${out_dir} ${CMAKE_SOURCE_DIR}/bpf/include)
  target_link_libraries(sonde_bpf_${name} INTERFACE PkgConfig::LIBBPF PkgConfig::LIBELF PkgConfig::ZLIB)
endfunction()
