# `make install PREFIX=...`: the molt tool, the C headers, molt.pc and the CMake package.
include(CMakePackageConfigHelpers)

add_library(molt_headers INTERFACE)
add_library(Molt::headers ALIAS molt_headers)
set_target_properties(molt_headers PROPERTIES EXPORT_NAME headers)
target_include_directories(molt_headers INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

install(TARGETS molt molt-driver RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
set_target_properties(molt_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(molt molt-driver PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
install(TARGETS molt_runtime EXPORT MoltTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/cmake/MoltVersion.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Molt)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/molt DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS molt_headers EXPORT MoltTargets)
install(EXPORT MoltTargets NAMESPACE Molt:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Molt)

configure_file(${PROJECT_SOURCE_DIR}/cmake/molt.pc.in ${PROJECT_BINARY_DIR}/molt.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/molt.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/MoltConfig.cmake.in
  ${PROJECT_BINARY_DIR}/MoltConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Molt
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/MoltConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/MoltConfig.cmake ${PROJECT_BINARY_DIR}/MoltConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Molt)
