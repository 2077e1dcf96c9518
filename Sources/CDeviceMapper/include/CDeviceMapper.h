// The C boundary of dmsnap: libdevmapper, libblkid and a few ioctls.
// Swift cannot import variadic callbacks, flexible array members or
// function-like ioctl macros; the tiny helpers here stand in for them.
#ifndef CDEVICEMAPPER_H
#define CDEVICEMAPPER_H

#include <libdevmapper.h>
#include <blkid/blkid.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/sysmacros.h>

/// Called for every libdevmapper log line at or below the verbosity set.
typedef void (*cdm_log_handler)(int level, const char *message);

/// Installs dmsnap's libdevmapper logger and sets udev synchronisation.
/// Errors (level <= 3) are also kept as the "last error" for the calling thread.
void cdm_setup(int udev_sync, int verbose, cdm_log_handler handler);

/// The last error line libdevmapper logged on this thread ("" if none).
const char *cdm_last_error(void);
void cdm_clear_last_error(void);

// DM_DEVICE_LIST: struct dm_names has a flexible `name[]`.
static inline const char *cdm_names_name(const struct dm_names *n) { return n->name; }
static inline uint64_t cdm_names_dev(const struct dm_names *n) { return n->dev; }
static inline const struct dm_names *cdm_names_next(const struct dm_names *n) {
    return n->next ? (const struct dm_names *)((const char *)n + n->next) : (const struct dm_names *)0;
}
// DM_DEVICE_DEPS: struct dm_deps has a flexible `device[]`.
static inline uint32_t cdm_deps_count(const struct dm_deps *d) { return d->count; }
static inline uint64_t cdm_deps_device(const struct dm_deps *d, uint32_t i) { return d->device[i]; }

static inline unsigned cdm_major(uint64_t dev) { return major((dev_t)dev); }
static inline unsigned cdm_minor(uint64_t dev) { return minor((dev_t)dev); }
static inline uint64_t cdm_makedev(unsigned ma, unsigned mi) { return (uint64_t)makedev(ma, mi); }

// Filesystem freeze / thaw (FIFREEZE / FITHAW) on an fd of the mount point.
int cdm_fifreeze(int fd);
int cdm_fithaw(int fd);
// Block device geometry.
int cdm_blkgetsize64(int fd, uint64_t *bytes);
int cdm_blksszget(int fd, int *bytes);
// syncfs(2) on an fd inside a filesystem.
int cdm_syncfs(int fd);

// The window guardian (shim.c): a forked child that finishes a freeze window and thaws if the
// parent dies while the window is open. `names`/`lockfs` are the devices the window suspends,
// `mount_fds` open directories of the filesystems it freezes, `cgroup_fds` the open
// `cgroup.freeze` files of the cgroups it freezes (the child writes 0 to them last). Returns 0,
// the pipe's write end, the child's pid and the shared window word, or -1 with errno.
int cdm_guardian_start(const char *const *names, const int *lockfs, int n, const int *mount_fds, int nm,
                       const int *cgroup_fds, int nc, int *out_fd, int *out_pid, volatile int **out_window);
/// Marks the window open (1) or closed (0): a store to shared memory, no system call.
void cdm_guardian_window(volatile int *window, int open);
/// Tells the guardian to exit, reaps it, unmaps the window word.
void cdm_guardian_stop(int fd, int pid, volatile int *window);

// Streams for `dmsnap export` (compress.c): a compressor writes its output to a file descriptor.
enum { CDM_ZSTD = 1, CDM_GZIP = 2 };
typedef struct cdm_compressor cdm_compressor;
cdm_compressor *cdm_compressor_new(int kind, int level);
/// Compresses `len` bytes (`finish`: and ends the stream), writing to `fd`; adds what it wrote to
/// `*written`. 0, or -1 with errno.
int cdm_compress_write(cdm_compressor *c, int fd, const void *in, size_t len, int finish, uint64_t *written);
void cdm_compressor_free(cdm_compressor *c);
typedef struct cdm_sha256 cdm_sha256;
cdm_sha256 *cdm_sha256_new(void);
void cdm_sha256_update(cdm_sha256 *h, const void *p, size_t n);
/// Writes the digest and frees `h`.
void cdm_sha256_final(cdm_sha256 *h, unsigned char out[32]);
/// 1 when the n bytes at p are all zero.
int cdm_is_zero(const void *p, size_t n);
/// Lowers this process's CPU priority (nice 10) and I/O priority (best effort, lowest level),
/// as a backup should run. 0, or -1 with errno.
int cdm_background_priority(void);

/// O_DIRECT (glibc shows it only with _GNU_SOURCE).
int cdm_o_direct(void);
/// O_TMPFILE (likewise).
int cdm_o_tmpfile(void);

/// Attaches a free loop device to `backing_fd` with LO_FLAGS `flags` (e.g. autoclear); its
/// number, and an open fd of it (with autoclear, closing the last one detaches it).
int cdm_loop_attach(int backing_fd, int flags, unsigned *out_major, unsigned *out_minor, int *out_fd);
int cdm_loop_autoclear(void);
int cdm_loop_direct_io(void);
/// The loop's LO_FLAGS now (LOOP_GET_STATUS64), and the device and inode of its backing file.
int cdm_loop_status(int loop_fd, unsigned *out_flags, unsigned long long *out_dev, unsigned long long *out_ino);
/// LOOP_SET_CAPACITY: the loop re-reads its backing file's size.
int cdm_loop_set_capacity(int loop_fd);
/// 1 when another process (or a loop device) has the file open: a write lease cannot be taken
/// (F_SETLEASE); 0 when none has; -1 with errno when the filesystem cannot tell (no leases).
int cdm_file_in_use(int fd);
/// statfs: the filesystem's magic, and its free (for unprivileged users, f_bavail) and total bytes.
int cdm_statfs(const char *path, unsigned long long *out_type, unsigned long long *out_free, unsigned long long *out_total);

/// Runs argv (PATH searched, no shell) in its own process group with the environment plus
/// `extra_env` (NAME=VALUE, NULL-terminated); waits at most `timeout_ms` (< 0: no limit), then
/// kills the group (`*out_timed_out` = 1). Its stdin is /dev/null, its stdout our stderr. 0 with
/// the wait status, or -1 with errno (not started).
int cdm_run(const char *const *argv, const char *const *extra_env, int timeout_ms, int *out_status, int *out_timed_out);
int cdm_exit_code(int status);
int cdm_term_signal(int status);
int cdm_run_foreground(const char *const *argv, const char *const *extra_env, int *out_status);
void cdm_signal_clear(void);

/// SIGINT and SIGTERM set a flag instead of ending the process (syscalls restart).
void cdm_signals_catch(void);
/// The first of them that arrived since `cdm_signals_catch`, or 0.
int cdm_signal_pending(void);

#endif
