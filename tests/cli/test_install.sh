# test_install.sh — `make install PREFIX=…` installs the header, both libraries, the
# pkg-config file and kdelta, and a program built with pkg-config against the installed
# copy (shared and static) runs.
. "$(dirname "$0")/lib.sh"
ROOT=$PWD
t_begin
t_case install
run make -C "$ROOT" --no-print-directory -s install PREFIX="$T_DIR/prefix" BUILD="${BUILD:-build}"
expect_rc 0
for f in include/korudelta.h lib/libkorudelta.a lib/libkorudelta.so lib/pkgconfig/korudelta.pc bin/kdelta; do
    if [ -e "$T_DIR/prefix/$f" ]; then ok; else bad "missing $f"; fi
done
export PKG_CONFIG_PATH="$T_DIR/prefix/lib/pkgconfig"
t_case shared
run sh -c "cc ${KD_CC_FLAGS:-} -o $T_DIR/qs_shared $ROOT/examples/quickstart.c \$(pkg-config --cflags --libs korudelta)"
expect_rc 0
run sh -c "cd $T_DIR && LD_LIBRARY_PATH=$T_DIR/prefix/lib ./qs_shared"
expect_rc 0
expect_out_has '^diff: \[\{"op":"replace","path":"/size","value":14\}\]$'
t_case static
rm -rf "$T_DIR/quickstart.db"
run sh -c "cc ${KD_CC_FLAGS:-} -o $T_DIR/qs_static $ROOT/examples/quickstart.c \$(pkg-config --cflags korudelta) $T_DIR/prefix/lib/libkorudelta.a \$(pkg-config --libs-only-l --static korudelta | sed 's/-lkorudelta//')"
expect_rc 0
run sh -c "cd $T_DIR && ./qs_static"
expect_rc 0
expect_out_has '^then: \{"size":12,"theme":"light"\}$'
t_end
