# `cmake --install` lays kiln out as a CMake package, so another project can write
#   find_package(kiln REQUIRED)
#   target_link_libraries(app PRIVATE kiln::kiln)
# and `#include <kiln/kiln.h>`. tests/install/ is such a project; the ctest
# `install_consumer` builds it against a fresh install.
include(CMakePackageConfigHelpers)

set(KILN_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/kiln)

install(TARGETS kiln EXPORT kilnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT kilnTargets NAMESPACE kiln:: DESTINATION ${KILN_INSTALL_CMAKEDIR})

# Headers keep the source layout under include/kiln/, the same paths the build tree's
# include/kiln link gives. ops/ brings ops/cpu/ along, nn/ its sub-folders.
install(FILES kiln.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln)
foreach(dir core autograd ops nn)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln/${dir}
    FILES_MATCHING PATTERN "*.h")
endforeach()
if(KILN_WITH_CUDA)
  install(DIRECTORY cuda/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln/cuda FILES_MATCHING PATTERN "*.h")
else()
  # Without the backend only the device queries exist (they answer "no GPU").
  install(FILES cuda/device.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln/cuda)
endif()

configure_package_config_file(cmake/kilnConfig.cmake.in ${PROJECT_BINARY_DIR}/kilnConfig.cmake
  INSTALL_DESTINATION ${KILN_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)  # 0.x: a minor bump may break the API
install(FILES ${PROJECT_BINARY_DIR}/kilnConfig.cmake ${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
  DESTINATION ${KILN_INSTALL_CMAKEDIR})
