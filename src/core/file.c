/* Whole-file reads with a size cap, and atomic writes (temp, fsync, rename, fsync dir). */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

lt_status lt_read_file(const char *path, int64_t max_bytes, char **out, int64_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lt_errorf(LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lt_errorf(LT_ERR_IO, "%s: not a regular file", path);
    }
    if ((int64_t)sb.st_size > max_bytes) {
        close(fd);
        return lt_errorf(LT_ERR_FORMAT, "%s: file is %lld bytes, more than the %lld allowed for this kind of file",
                         path, (long long)sb.st_size, (long long)max_bytes);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        close(fd);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory reading %lld bytes", path, (long long)sb.st_size);
    }
    int64_t got = 0;
    while (got < (int64_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)(sb.st_size - got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return lt_errorf(LT_ERR_IO, "%s: read failed: %s", path,
                             r < 0 ? strerror(errno) : "unexpected end of file");
        }
        got += r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    if (out_len) *out_len = got;
    return NULL;
}

static lt_status lt_fsync_dir_of(const char *path) {
    char *copy = strdup(path);
    if (!copy) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some filesystems refuse fsync on directories */
        close(fd);
    }
    free(copy);
    return NULL;
}

lt_status lt_write_file_atomic(const char *path, const void *data, int64_t len) {
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        lt_status st = lt_errorf(LT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    int64_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, (size_t)(len - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            lt_status st = lt_errorf(LT_ERR_IO, "%s: write failed: %s (is the disk full?)", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return st;
        }
        done += w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        lt_status st = lt_errorf(LT_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        lt_status st = lt_errorf(LT_ERR_IO, "%s: rename to %s failed: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return lt_fsync_dir_of(path);
}

bool lt_is_little_endian(void) {
    const uint32_t one = 1;
    return *(const uint8_t *)&one == 1;
}

char *lt_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

lt_status lt_mkdir_p(const char *path) {
    size_t len = strlen(path);
    if (len == 0) return lt_errorf(LT_ERR_INVALID_ARG, "empty directory name");
    char *buf = strdup(path);
    if (!buf) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            lt_status st = lt_errorf(LT_ERR_IO, "%s: cannot create directory %s: %s", path, buf, strerror(errno));
            free(buf);
            return st;
        }
        buf[i] = saved;
    }
    free(buf);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lt_errorf(LT_ERR_IO, "%s: exists and is not a directory", path);
    return NULL;
}

lt_status lt_map_file(const char *path, const char *kind, const uint8_t **base, int64_t *len, bool *mapped) {
    static const uint8_t empty[8];
    *base = empty;
    *len = 0;
    *mapped = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lt_errorf(LT_ERR_IO, "%s: cannot open: %s; check the path and its permissions", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lt_errorf(LT_ERR_IO, "%s: not a regular file; give the path of %s", path, kind);
    }
    if (sb.st_size > 0) { /* mmap of length 0 fails; an empty file is refused by the parser */
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            lt_status st =
                lt_errorf(LT_ERR_IO, "%s: mmap of %lld bytes failed: %s", path, (long long)sb.st_size, strerror(errno));
            close(fd);
            return st;
        }
        *base = p;
        *mapped = true;
    }
    *len = (int64_t)sb.st_size;
    close(fd); /* the mapping keeps the file */
    return NULL;
}

void lt_unmap_file(const uint8_t *base, int64_t len, bool mapped) {
    if (mapped && base) munmap((void *)base, (size_t)len);
}
