# sonde_target_defaults(<target>): warnings and include roots for project code.
function(sonde_target_defaults target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${SONDE_WARNINGS}>)
  target_include_directories(${target} PUBLIC ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/bpf/include)
endfunction()

# sonde_add_gtest(<name> SOURCES ... LIBS ... [LABELS ...]): one GoogleTest binary
# registered with ctest. Kernel tests carry the label "kernel". Test data files
# committed with the tests live under SONDE_TEST_DATA_DIR (tests/data).
function(sonde_add_gtest name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  sonde_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    SONDE_SOURCE_DIR="${CMAKE_SOURCE_DIR}" SONDE_BINARY_DIR="${CMAKE_BINARY_DIR}"
    SONDE_TEST_DATA_DIR="${CMAKE_SOURCE_DIR}/tests/data")
  include(GoogleTest)
  if(ARG_LABELS)
    gtest_discover_tests(${name} PROPERTIES LABELS "${ARG_LABELS}" DISCOVERY_TIMEOUT 60)
  else()
    gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
  endif()
endfunction()
