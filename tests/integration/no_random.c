/*
 * no_random.c - an LD_PRELOAD shim for one integration test: getrandom(2)
 * fails with ENOSYS while the file named by HERALD_TEST_NO_RANDOM_FILE
 * exists, and works as usual otherwise. It lets socketio.test.mjs show that
 * a gateway with no random bytes refuses to create sessions (their ids are
 * credentials) instead of inventing guessable ones. Never linked into a
 * program; built without sanitizers so it can be preloaded before them.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

ssize_t getrandom(void *buf, size_t len, unsigned int flags);

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    const char *f = getenv("HERALD_TEST_NO_RANDOM_FILE");
    if (f && access(f, F_OK) == 0) {
        errno = ENOSYS;
        return -1;
    }
    return syscall(SYS_getrandom, buf, len, flags);
}
