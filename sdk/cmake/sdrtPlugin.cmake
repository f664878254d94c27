# sdrt_add_external_plugin(<name> <sources...>): builds an out-of-tree plugin
# module named sdrt_<name> that exports only sdrt_plugin_entry.
function(sdrt_add_external_plugin name)
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES PREFIX "" OUTPUT_NAME "sdrt_${name}"
    C_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${name} PRIVATE sdrt::sdrt_sdk)
endfunction()
