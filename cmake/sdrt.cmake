# Helpers shared by every target in the tree.

find_package(PkgConfig QUIET)
find_path(CJSON_INCLUDE_DIR cjson/cJSON.h)
find_library(CJSON_LIBRARY cjson)
if(NOT CJSON_INCLUDE_DIR OR NOT CJSON_LIBRARY)
  message(FATAL_ERROR "cJSON not found: install libcjson-dev (scripts/setup.sh does)")
endif()
add_library(sdrt_cjson INTERFACE)
target_include_directories(sdrt_cjson INTERFACE ${CJSON_INCLUDE_DIR})
target_link_libraries(sdrt_cjson INTERFACE ${CJSON_LIBRARY})

# sdrt_add_plugin(NAME <name> SOURCES ... [LIBS ...] [MANIFEST plugin.json])
# Builds a plugin module into build/lib/sdrt/plugins/ with its manifest
# beside it, exporting only sdrt_plugin_entry.
function(sdrt_add_plugin)
  cmake_parse_arguments(P "" "NAME;MANIFEST" "SOURCES;LIBS" ${ARGN})
  add_library(sdrt_plugin_${P_NAME} MODULE ${P_SOURCES})
  set_target_properties(sdrt_plugin_${P_NAME} PROPERTIES
    PREFIX "" OUTPUT_NAME "sdrt_${P_NAME}"
    LIBRARY_OUTPUT_DIRECTORY ${SDRT_PLUGIN_OUTPUT_DIR})
  target_link_libraries(sdrt_plugin_${P_NAME} PRIVATE sdrt_sdk ${P_LIBS})
  if(NOT P_MANIFEST)
    set(P_MANIFEST ${CMAKE_CURRENT_SOURCE_DIR}/plugin.json)
  endif()
  if(EXISTS ${P_MANIFEST})
    configure_file(${P_MANIFEST} ${SDRT_PLUGIN_OUTPUT_DIR}/sdrt_${P_NAME}.json COPYONLY)
    install(FILES ${P_MANIFEST} DESTINATION ${SDRT_PLUGIN_INSTALL_DIR} RENAME sdrt_${P_NAME}.json)
  endif()
  install(TARGETS sdrt_plugin_${P_NAME} LIBRARY DESTINATION ${SDRT_PLUGIN_INSTALL_DIR})
endfunction()

# sdrt_add_backend(NAME <name> SOURCES ... [LIBS ...]): a compute backend
# family module in build/lib/sdrt/backends/, loaded by the device plugin.
function(sdrt_add_backend)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_library(sdrt_backend_${P_NAME} MODULE ${P_SOURCES})
  set_target_properties(sdrt_backend_${P_NAME} PROPERTIES
    PREFIX "" OUTPUT_NAME "sdrt_backend_${P_NAME}"
    LIBRARY_OUTPUT_DIRECTORY ${SDRT_BACKEND_OUTPUT_DIR})
  target_link_libraries(sdrt_backend_${P_NAME} PRIVATE sdrt_sdk ${P_LIBS})
  install(TARGETS sdrt_backend_${P_NAME} LIBRARY DESTINATION ${SDRT_BACKEND_INSTALL_DIR})
endfunction()

# sdrt_add_test(NAME <area> SOURCES ... [LIBS ...] [ENV ...]): one test
# executable per area, registered with ctest. SDRT_REFERENCE points at
# ../shared/reference, SDRT_BUILD_DIR and SDRT_SOURCE_DIR at the trees.
function(sdrt_add_test)
  cmake_parse_arguments(P "" "NAME;TIMEOUT" "SOURCES;LIBS;ENV" ${ARGN})
  add_executable(test-${P_NAME} ${P_SOURCES} ${CMAKE_SOURCE_DIR}/tests/harness/harness.c)
  target_include_directories(test-${P_NAME} PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness)
  target_link_libraries(test-${P_NAME} PRIVATE sdrt_sdk ${P_LIBS})
  if(NOT WIN32)
    target_link_libraries(test-${P_NAME} PRIVATE m)
  endif()
  set_target_properties(test-${P_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${P_NAME} COMMAND test-${P_NAME})
  if(NOT P_TIMEOUT)
    set(P_TIMEOUT 300)
  endif()
  set_tests_properties(${P_NAME} PROPERTIES TIMEOUT ${P_TIMEOUT} ENVIRONMENT
    "SDRT_REFERENCE=${SDRT_REFERENCE_DIR};SDRT_BUILD_DIR=${CMAKE_BINARY_DIR};SDRT_SOURCE_DIR=${CMAKE_SOURCE_DIR};${P_ENV}")
endfunction()

set(SDRT_REFERENCE_DIR "${CMAKE_CURRENT_SOURCE_DIR}/../shared/reference" CACHE PATH "diffusers reference data")
