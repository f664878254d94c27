# sdrt_add_external_plugin(<name> <sources...> [MANIFEST plugin.json]):
# builds an out-of-tree plugin module sdrt_<name> that exports only
# sdrt_plugin_entry, and puts its manifest beside it as sdrt_<name>.json,
# where the host looks for it.
function(sdrt_add_external_plugin name)
  cmake_parse_arguments(P "" "MANIFEST" "" ${ARGN})
  add_library(${name} MODULE ${P_UNPARSED_ARGUMENTS})
  set_target_properties(${name} PROPERTIES PREFIX "" OUTPUT_NAME "sdrt_${name}"
    C_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${name} PRIVATE sdrt::sdrt_sdk)
  if(P_MANIFEST)
    add_custom_command(TARGET ${name} POST_BUILD COMMAND ${CMAKE_COMMAND} -E copy
      ${CMAKE_CURRENT_SOURCE_DIR}/${P_MANIFEST} $<TARGET_FILE_DIR:${name}>/sdrt_${name}.json)
  endif()
endfunction()
