# molt_add_version(NAME [SHARED_ONLY] SOURCES ...): builds a program as Molt versions.
#
#   NAME        an executable linked with the Molt runtime: version 1, started as usual;
#   NAME_update a shared object of the same sources for `molt update PID NAME_update.so`
#               (and `molt run`), with the flags an update object needs: -g, -fPIC, -shared,
#               -Wl,-Bsymbolic (its calls to its own functions bind to itself, never to the
#               executable's copies).
# With SHARED_ONLY, only NAME_update is made. Both carry -g: Molt reads the version from its DWARF.
function(molt_add_version name)
  cmake_parse_arguments(PARSE_ARGV 1 MOLT "SHARED_ONLY" "" "SOURCES")
  if(NOT MOLT_SOURCES)
    message(FATAL_ERROR "molt_add_version(${name}): no SOURCES")
  endif()
  if(TARGET Molt::runtime)
    set(runtime Molt::runtime)
  else()
    set(runtime molt_runtime)  # inside the Molt build itself
  endif()
  if(NOT MOLT_SHARED_ONLY)
    add_executable(${name} ${MOLT_SOURCES})
    target_compile_options(${name} PRIVATE -g)
    set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_link_libraries(${name} PRIVATE ${runtime})
  endif()
  add_library(${name}_update SHARED ${MOLT_SOURCES})
  target_compile_options(${name}_update PRIVATE -g)
  set_target_properties(${name}_update PROPERTIES PREFIX "" OUTPUT_NAME ${name}_update)
  target_link_options(${name}_update PRIVATE -Wl,-Bsymbolic)
  target_link_libraries(${name}_update PRIVATE ${runtime})
endfunction()
