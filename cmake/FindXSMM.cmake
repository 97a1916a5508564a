# Finds libxsmm and defines the imported target XSMM::XSMM. Used by scorekit's
# own build and installed with its CMake package, because Debian ships
# libxsmm as a static archive with no CMake package of its own.
#
# Sets XSMM_FOUND, XSMM_INCLUDE_DIR, XSMM_LIBRARY.

find_path(XSMM_INCLUDE_DIR libxsmm.h)
# The static archive first: it is position independent, so it can go into a
# shared library, and nothing then has to find libxsmm at run time.
find_library(XSMM_LIBRARY NAMES libxsmm.a xsmm)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(XSMM REQUIRED_VARS XSMM_LIBRARY XSMM_INCLUDE_DIR)
mark_as_advanced(XSMM_INCLUDE_DIR XSMM_LIBRARY)

if(XSMM_FOUND AND NOT TARGET XSMM::XSMM)
  # What libxsmm.a itself needs (its libxsmm.pc: -lpthread -lrt -ldl -lm);
  # its BLAS fallbacks are left to the caller, who picks the BLAS.
  find_package(Threads REQUIRED)
  add_library(XSMM::XSMM UNKNOWN IMPORTED)
  set_target_properties(XSMM::XSMM PROPERTIES
    IMPORTED_LOCATION "${XSMM_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${XSMM_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;rt;${CMAKE_DL_LIBS};m")
endif()
