/*
 * replay.c - runs a libFuzzer target over files, without libFuzzer.
 *
 * Every fuzz target's committed corpus (and every crash found, once fixed)
 * is replayed by CTest through this driver, so the normal GCC and sanitizer
 * builds exercise the same inputs the fuzzer found interesting. Each input
 * is copied so that it ends exactly at a guard page: reading one byte past
 * the end faults even without ASan.
 *
 * Usage: replay_<target> FILE|DIR...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_one(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (size + page - 1) / page;
    size_t map_len = (pages + 1) * page;
    uint8_t *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        fclose(f);
        return -1;
    }
    uint8_t *guard = map + pages * page;
    mprotect(guard, page, PROT_NONE);
    uint8_t *data = guard - size;
    if (size && fread(data, 1, size, f) != size) {
        fprintf(stderr, "%s: short read\n", path);
        fclose(f);
        munmap(map, map_len);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, size);
    munmap(map, map_len);
    return 0;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_one(path);
    }
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (run_path(sub, count) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int count = 0, rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (run_path(argv[i], &count) != 0)
            rc = 1;
    printf("%s: replayed %d inputs\n", argv[0], count);
    if (count == 0) {
        fprintf(stderr, "no inputs: the corpus is missing\n");
        return 1;
    }
    return rc;
}
