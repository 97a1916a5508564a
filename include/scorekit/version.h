/* scorekit's version. Written here once: CMake reads the three numbers for
 * the project, package and soname versions, and sk_version() returns them. */
#ifndef SCOREKIT_VERSION_H
#define SCOREKIT_VERSION_H

#define SK_VERSION_MAJOR 0
#define SK_VERSION_MINOR 1
#define SK_VERSION_PATCH 0

#define SK__VERSION_STR(x) #x
#define SK__VERSION_XSTR(x) SK__VERSION_STR(x)
/* "MAJOR.MINOR.PATCH" */
#define SK_VERSION_STRING                                                              \
  SK__VERSION_XSTR(SK_VERSION_MAJOR) "." SK__VERSION_XSTR(SK_VERSION_MINOR) "." \
  SK__VERSION_XSTR(SK_VERSION_PATCH)
/* One number in version order, for #if: SK_VERSION >= SK_VERSION_AT(0, 2, 0)
 * (minor and patch below 100). */
#define SK_VERSION_AT(major, minor, patch) ((major) * 10000 + (minor) * 100 + (patch))
#define SK_VERSION SK_VERSION_AT(SK_VERSION_MAJOR, SK_VERSION_MINOR, SK_VERSION_PATCH)

#endif
