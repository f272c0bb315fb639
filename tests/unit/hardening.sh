#!/bin/sh
# hardening.sh BINARY... - checks that release binaries carry the hardening
# CMakeLists.txt asks for: PIE, full RELRO (GNU_RELRO + BIND_NOW), a
# non-executable stack, stack canaries and fortified libc calls.
status=0
for bin in "$@"; do
    fail() { echo "FAIL $bin: $1"; status=1; }
    readelf -hW "$bin" | grep -q 'Type:.*DYN' || fail "not a PIE"
    readelf -lW "$bin" | grep -q GNU_RELRO || fail "no GNU_RELRO segment"
    readelf -dW "$bin" | grep -Eq 'BIND_NOW|FLAGS_1.*NOW' || fail "no BIND_NOW (partial RELRO only)"
    readelf -lW "$bin" | grep GNU_STACK | grep -q 'RWE' && fail "executable stack"
    readelf -sW --dyn-syms "$bin" | grep -q '__stack_chk_fail' || fail "no stack protector"
    readelf -sW --dyn-syms "$bin" | grep -Eq '__[a-z]+_chk@' || fail "no fortified libc calls"
    [ $status -eq 0 ] && echo "ok $bin"
done
exit $status
