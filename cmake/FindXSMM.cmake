# Finds libxsmm's header-only form, which scorekit compiles in
# (src/kernels/cpu/xsmm.c): libxsmm_source.h and the sources it includes,
# which Debian's libxsmm-dev installs under include/libxsmm/ (upstream keeps
# them in src/, where libxsmm_source.h looks: XSMM_SHIM_DIR makes that path).
#
# Sets XSMM_FOUND, XSMM_INCLUDE_DIR (libxsmm.h), XSMM_SOURCE_DIR (the
# sources) and XSMM_SHIM_DIR (to put first on the include path of the file
# that includes libxsmm_source.h).

find_path(XSMM_INCLUDE_DIR NAMES libxsmm_source.h libxsmm.h)
find_path(XSMM_SOURCE_DIR libxsmm_main.c HINTS ${XSMM_INCLUDE_DIR}/libxsmm ${XSMM_INCLUDE_DIR}/../src)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(XSMM REQUIRED_VARS XSMM_INCLUDE_DIR XSMM_SOURCE_DIR)
mark_as_advanced(XSMM_INCLUDE_DIR XSMM_SOURCE_DIR)

if(XSMM_FOUND)
  # shim/include/libxsmm_source.h includes "../src/*.c": shim/src is the sources.
  set(XSMM_SHIM_DIR ${CMAKE_BINARY_DIR}/xsmm-shim/include)
  file(MAKE_DIRECTORY ${XSMM_SHIM_DIR})
  configure_file(${XSMM_INCLUDE_DIR}/libxsmm_source.h ${XSMM_SHIM_DIR}/libxsmm_source.h COPYONLY)
  file(CREATE_LINK ${XSMM_SOURCE_DIR} ${CMAKE_BINARY_DIR}/xsmm-shim/src SYMBOLIC)
endif()
