#!/usr/bin/env bash
# Installs scorekit from a build tree into a temporary prefix and builds a
# program (tests/install/consumer.c) against the installed copy the ways a
# user would: the CMake package (shared and static, from C and from C++) and
# pkg-config (shared, then static); each program runs and checks its values.
# Also checks that libscorekit.so exports exactly the functions the headers
# declare. No network. Run by CTest as
#   install_consumer.sh CMAKE BUILD_DIR SOURCE_DIR CC [FLAGS]
# FLAGS go to every compile and link (the sanitizers of a sanitizer build).
set -euo pipefail
cmake=$1 build=$2 src=$3 cc=$4 flags=${5:-}
read -ra flagv <<<"$flags"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install_consumer: $*" >&2; exit 1; }
for tool in pkg-config nm readelf; do
  command -v $tool >/dev/null || fail "$tool not found (scripts/deps.sh installs it)"
done

prefix=$tmp/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "install failed"; }
pc=$(find "$prefix" -name scorekit.pc)
[ -n "$pc" ] || fail "no scorekit.pc under $prefix"
libdir=$(cd "$(dirname "$pc")/.." && pwd)
so=$libdir/libscorekit.so
if [ ! -e "$so" ] || [ ! -e "$libdir/libscorekit.a" ]; then fail "libraries missing from $libdir"; fi

# Exports: the public functions and nothing else (no sk__ internals, no
# libxsmm, BLAS wrappers, gfortran stubs or target_clones resolvers).
nm -D --defined-only "$so" | awk '{print $NF}' | sort >"$tmp/exported"
grep -v '^sk_[a-z]' "$tmp/exported" >"$tmp/foreign" || true
[ ! -s "$tmp/foreign" ] || fail "libscorekit.so exports $(wc -l <"$tmp/foreign") symbols outside the API: $(head -5 "$tmp/foreign" | tr '\n' ' ')"
# The names declared SK_API in the installed headers (the name before the
# first parenthesis of each declaration).
grep -hv '^#' "$prefix"/include/scorekit/*.h | tr '\n' ' ' | grep -oE 'SK_API[^;]*;' |
  sed -E 's/\(.*//; s/.*[^a-z0-9_](sk_[a-z0-9_]+) *$/\1/' | sort -u >"$tmp/declared"
diff "$tmp/declared" "$tmp/exported" >"$tmp/diff" ||
  fail "exports differ from the headers' declarations (< declared only, > exported only): $(cat "$tmp/diff")"
echo "exports: $(wc -l <"$tmp/exported") symbols, all declared in the headers"

needs_libscorekit() { readelf -d "$1" | grep -q 'NEEDED.*libscorekit\.so'; }

# The CMake package, from a C project and from a C++ project without C.
langs=C
command -v c++ >/dev/null && langs="C CXX"
for lang in $langs; do
  out=$tmp/cmake-$lang
  "$cmake" -S "$src/tests/install" -B "$out" -DCMAKE_PREFIX_PATH="$prefix" -DSK_CONSUMER_LANG="$lang" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_${lang}_FLAGS=$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$out.log" 2>&1 || { cat "$out.log"; fail "find_package ($lang) failed"; }
  "$cmake" --build "$out" >>"$out.log" 2>&1 || { cat "$out.log"; fail "CMake consumer ($lang) did not build"; }
  needs_libscorekit "$out/consumer_shared" || fail "CMake consumer_shared ($lang) does not use libscorekit.so"
  ! needs_libscorekit "$out/consumer_static" || fail "CMake consumer_static ($lang) uses libscorekit.so"
  "$out/consumer_shared" || fail "CMake consumer_shared ($lang) failed"
  "$out/consumer_static" || fail "CMake consumer_static ($lang) failed"
done

# pkg-config, shared: found at run time through LD_LIBRARY_PATH.
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
version=$(pkg-config --modversion scorekit)
# shellcheck disable=SC2046 # pkg-config's flags are meant to split
"$cc" "${flagv[@]}" -DEXPECT_VERSION="\"$version\"" "$src/tests/install/consumer.c" -o "$tmp/pc_shared" \
  $(pkg-config --cflags --libs scorekit) -lm || fail "pkg-config shared link failed"
needs_libscorekit "$tmp/pc_shared" || fail "pkg-config shared program does not use libscorekit.so"
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/pc_shared" ||
  fail "pkg-config shared program failed"

# pkg-config, static: with the shared library taken out of the prefix, the
# linker can only take -lscorekit from the archive, so --static's flags must
# name everything the archive needs.
rm -f "$libdir"/libscorekit.so*
# shellcheck disable=SC2046
"$cc" "${flagv[@]}" -DEXPECT_VERSION="\"$version\"" "$src/tests/install/consumer.c" -o "$tmp/pc_static" \
  $(pkg-config --cflags --libs --static scorekit) -lm || fail "pkg-config --static link failed"
"$tmp/pc_static" || fail "pkg-config static program failed"
echo "install_consumer: ok"
