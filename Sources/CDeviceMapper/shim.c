#define _GNU_SOURCE
#include "CDeviceMapper.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <unistd.h>

static cdm_log_handler g_handler;
static int g_verbose;
static __thread char g_last_error[512];

static void cdm_log(int level, const char *file, int line, int dm_errno_or_class, const char *f, ...)
{
    (void)file; (void)line; (void)dm_errno_or_class;
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    int lvl = level & 7; /* strip _LOG_STDERR / _LOG_ONCE bits */
    if (lvl <= 3) {
        snprintf(g_last_error, sizeof g_last_error, "%s", buf);
    }
    if (g_handler && lvl <= g_verbose) {
        g_handler(lvl, buf);
    }
}

void cdm_setup(int udev_sync, int verbose, cdm_log_handler handler)
{
    g_handler = handler;
    g_verbose = verbose;
    dm_log_with_errno_init(cdm_log);
    dm_udev_set_sync_support(udev_sync);
}

const char *cdm_last_error(void) { return g_last_error; }
void cdm_clear_last_error(void) { g_last_error[0] = 0; }

int cdm_fifreeze(int fd) { return ioctl(fd, FIFREEZE, 0); }
int cdm_fithaw(int fd) { return ioctl(fd, FITHAW, 0); }
int cdm_blkgetsize64(int fd, uint64_t *bytes) { return ioctl(fd, BLKGETSIZE64, bytes); }
int cdm_blksszget(int fd, int *bytes) { return ioctl(fd, BLKSSZGET, bytes); }
int cdm_syncfs(int fd) { return syncfs(fd); }

/* ---- the window guardian ------------------------------------------------------------------
 * A child forked before a plan's freeze window. It blocks reading a pipe whose write end only the
 * parent holds, so it wakes only when the parent is done ('q') or dead (EOF: the kernel closes
 * the pipe when the parent dies, SIGKILL included). Whether the window is open is a word in
 * memory shared with the parent, set without a system call, so the window never pays for the
 * guardian. At EOF with the window open, the child finishes the window: it resumes every
 * suspended device (swapping in the table the parent loaded: that only rolls a step forward)
 * and, once any device was suspended or switched, also suspends and resumes the ones still
 * waiting with a loaded table, then thaws every filesystem. It uses raw ioctls and no
 * allocation, so it is safe to run in a forked child of any process. Recover settles the rest.
 */
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>

static int g_dm_ioctl(int control, unsigned long cmd, const char *name, uint32_t flags, uint32_t *out_flags)
{
    struct dm_ioctl io;
    memset(&io, 0, sizeof io);
    io.version[0] = DM_VERSION_MAJOR;
    io.data_size = sizeof io;
    io.data_start = sizeof io;
    io.flags = flags;
    strncpy(io.name, name, sizeof io.name - 1);
    int rc;
    do { rc = ioctl(control, cmd, &io); } while (rc < 0 && errno == EINTR);
    if (rc == 0 && out_flags) *out_flags = io.flags;
    return rc;
}

static void g_finish_window(int control, const char *const *names, const int *lockfs, int n,
                            const int *mount_fds, int nm, const int *cgroup_fds, int nc)
{
    uint32_t flags[64];
    int moved = 0;
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
        flags[i] = 0;
        if (g_dm_ioctl(control, DM_DEV_STATUS, names[i], 0, &flags[i]) != 0) flags[i] = 0;
        if ((flags[i] & DM_SUSPEND_FLAG) || !(flags[i] & DM_INACTIVE_PRESENT_FLAG)) moved = 1;
    }
    for (int i = 0; i < n; i++) {
        if (flags[i] & DM_SUSPEND_FLAG) {
            g_dm_ioctl(control, DM_DEV_SUSPEND, names[i], 0, 0);
        } else if (moved && (flags[i] & DM_INACTIVE_PRESENT_FLAG)) {
            if (g_dm_ioctl(control, DM_DEV_SUSPEND, names[i], DM_SUSPEND_FLAG | (lockfs[i] ? 0 : DM_SKIP_LOCKFS_FLAG), 0) == 0)
                g_dm_ioctl(control, DM_DEV_SUSPEND, names[i], 0, 0);
        }
    }
    for (int i = 0; i < nm; i++) {
        int rc;
        do { rc = ioctl(mount_fds[i], FITHAW, 0); } while (rc < 0 && errno == EINTR);
    }
    /* the frozen cgroups last: their processes run again on thawed filesystems */
    for (int i = 0; i < nc; i++) {
        ssize_t w;
        do { w = pwrite(cgroup_fds[i], "0", 1, 0); } while (w < 0 && errno == EINTR);
    }
}

int cdm_guardian_start(const char *const *names, const int *lockfs, int n, const int *mount_fds, int nm,
                       const int *cgroup_fds, int nc, int *out_fd, int *out_pid, volatile int **out_window)
{
    int control = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
    if (control < 0) return -1;
    volatile int *window = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (window == MAP_FAILED) { close(control); return -1; }
    *window = 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) { munmap((void *)window, 4096); close(control); return -1; }
    pid_t pid = fork();
    if (pid < 0) { close(p[0]); close(p[1]); close(control); munmap((void *)window, 4096); return -1; }
    if (pid == 0) {
        /* the child: its own session (no terminal signals), deaf to the usual ones */
        close(p[1]);
        setsid();
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        close(0); close(1); close(2);
        for (;;) {
            char c;
            ssize_t r = read(p[0], &c, 1);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                if (__atomic_load_n(window, __ATOMIC_SEQ_CST))
                    g_finish_window(control, names, lockfs, n, mount_fds, nm, cgroup_fds, nc);
                _exit(0);
            }
            if (c == 'q') _exit(0);
        }
    }
    close(p[0]);
    close(control);
    *out_fd = p[1];
    *out_pid = (int)pid;
    *out_window = window;
    return 0;
}

void cdm_guardian_window(volatile int *window, int open)
{
    __atomic_store_n(window, open, __ATOMIC_SEQ_CST);
}

void cdm_guardian_stop(int fd, int pid, volatile int *window)
{
    char q = 'q';
    ssize_t r;
    do { r = write(fd, &q, 1); } while (r < 0 && errno == EINTR);
    close(fd);
    int status;
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR) {}
    munmap((void *)window, 4096);
}

/* ---- SIGINT / SIGTERM as a flag ------------------------------------------------------------ */
static volatile sig_atomic_t g_signal;
/* the last signal sent to us by a process (kill(1), systemd), not by the terminal: a command we
 * run in our process group got the terminal's signal itself */
static volatile sig_atomic_t g_forward;

static void g_on_signal(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    if (!g_signal) g_signal = sig;
    if (!si || si->si_code != SI_KERNEL) g_forward = sig;
}

void cdm_signals_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = g_on_signal;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, 0);
    sigaction(SIGTERM, &sa, 0);
}

int cdm_signal_pending(void) { return g_signal; }

void cdm_signal_clear(void) { g_signal = 0; g_forward = 0; }

int cdm_o_direct(void) { return O_DIRECT; }
int cdm_o_tmpfile(void) { return O_TMPFILE; }

/* ---- loop devices ---------------------------------------------------------------------------
 * A free loop device (LOOP_CTL_GET_FREE) configured over an open file (LOOP_CONFIGURE), with
 * autoclear: it detaches itself when its last user (a dm table) lets go. The loop's own fd is
 * returned open: the caller closes it once the device has another user. */
#include <linux/loop.h>
#include <sys/stat.h>

int cdm_loop_attach(int backing_fd, int flags, unsigned *out_major, unsigned *out_minor, int *out_fd)
{
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) return -1;
    for (int attempt = 0; attempt < 8; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) { int e = errno; close(ctl); errno = e; return -1; }
        char path[32];
        snprintf(path, sizeof path, "/dev/loop%d", n);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) { int e = errno; close(ctl); errno = e; return -1; }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (unsigned)backing_fd;
        cfg.info.lo_flags = (unsigned)flags;
        int rc = ioctl(fd, LOOP_CONFIGURE, &cfg);
        if (rc == 0) {
            struct stat st;
            fstat(fd, &st);
            *out_major = major(st.st_rdev);
            *out_minor = minor(st.st_rdev);
            *out_fd = fd; /* kept open: with autoclear, its close would detach an unused loop */
            close(ctl);
            return 0;
        }
        int e = errno;
        close(fd);
        if (e != EBUSY) { close(ctl); errno = e; return -1; }
        /* taken meanwhile by someone else: ask for another */
    }
    close(ctl);
    errno = EBUSY;
    return -1;
}

int cdm_loop_autoclear(void) { return LO_FLAGS_AUTOCLEAR; }

int cdm_loop_direct_io(void) { return LO_FLAGS_DIRECT_IO; }

int cdm_loop_status(int loop_fd, unsigned *out_flags, unsigned long long *out_dev, unsigned long long *out_ino)
{
    struct loop_info64 info;
    memset(&info, 0, sizeof info);
    if (ioctl(loop_fd, LOOP_GET_STATUS64, &info) < 0) return -1;
    *out_flags = info.lo_flags;
    *out_dev = info.lo_device;
    *out_ino = info.lo_inode;
    return 0;
}

int cdm_loop_set_capacity(int loop_fd) { return ioctl(loop_fd, LOOP_SET_CAPACITY, 0); }

#include <fcntl.h>
int cdm_file_in_use(int fd)
{
    if (fcntl(fd, F_SETLEASE, F_WRLCK) == 0) {
        fcntl(fd, F_SETLEASE, F_UNLCK);
        return 0;
    }
    if (errno == EAGAIN || errno == EBUSY) return 1;
    return -1;
}

#include <sys/vfs.h>
int cdm_statfs(const char *path, unsigned long long *out_type, unsigned long long *out_free, unsigned long long *out_total)
{
    struct statfs st;
    if (statfs(path, &st) < 0) return -1;
    *out_type = (unsigned long long)st.f_type;
    *out_free = (unsigned long long)st.f_bavail * (unsigned long long)st.f_bsize;
    *out_total = (unsigned long long)st.f_blocks * (unsigned long long)st.f_bsize;
    return 0;
}

/* ---- hooks: a program run without a shell, in its own process group, with a deadline ----- */
#include <stdlib.h>
#include <spawn.h>
#include <time.h>
extern char **environ;

/* the environment: ours plus the extra NAME=VALUE entries (they win); free() the array only */
static char **merged_env(const char *const *extra_env)
{
    int n_env = 0, n_extra = 0;
    while (environ[n_env]) n_env++;
    while (extra_env[n_extra]) n_extra++;
    char **env = calloc((size_t)(n_env + n_extra + 1), sizeof *env);
    if (!env) return 0;
    int k = 0;
    for (int i = 0; i < n_env; i++) {
        int shadowed = 0;
        for (int j = 0; j < n_extra && !shadowed; j++) {
            const char *eq = strchr(extra_env[j], '=');
            size_t len = eq ? (size_t)(eq - extra_env[j]) + 1 : strlen(extra_env[j]);
            if (strncmp(environ[i], extra_env[j], len) == 0) shadowed = 1;
        }
        if (!shadowed) env[k++] = environ[i];
    }
    for (int j = 0; j < n_extra; j++) env[k++] = (char *)extra_env[j];
    env[k] = 0;
    return env;
}

/* a child with no signal blocked and SIGINT, SIGTERM, SIGPIPE at their defaults (dmsnap
 * catches or ignores them); in a process group of its own when asked */
static void spawn_attr(posix_spawnattr_t *attr, int own_group)
{
    posix_spawnattr_init(attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(attr, &none);
    sigset_t dfl;
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_setsigdefault(attr, &dfl);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (own_group) {
        posix_spawnattr_setpgroup(attr, 0);
        flags |= POSIX_SPAWN_SETPGROUP;
    }
    posix_spawnattr_setflags(attr, flags);
}

int cdm_run(const char *const *argv, const char *const *extra_env, int timeout_ms, int *out_status, int *out_timed_out)
{
    char **env = merged_env(extra_env);
    if (!env) return -1;
    posix_spawnattr_t attr;
    spawn_attr(&attr, 1);
    /* stdin from /dev/null; stdout to our stderr (our stdout may be JSON for a script) */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (rc != 0) { errno = rc; return -1; }
    *out_timed_out = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) { *out_status = status; return 0; }
        if (r < 0 && errno != EINTR) return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (timeout_ms >= 0 && elapsed >= timeout_ms) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            *out_status = status;
            *out_timed_out = 1;
            return 0;
        }
        struct timespec nap = {0, 5 * 1000000};
        nanosleep(&nap, 0);
    }
}

/* A command in the foreground: our process group, terminal and standard streams; a SIGINT or
 * SIGTERM sent to us (not by the terminal, which signals the whole group) is passed on to it. */
int cdm_run_foreground(const char *const *argv, const char *const *extra_env, int *out_status)
{
    char **env = merged_env(extra_env);
    if (!env) return -1;
    posix_spawnattr_t attr;
    spawn_attr(&attr, 0);
    g_forward = 0;
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], 0, &attr, (char *const *)argv, env);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (rc != 0) { errno = rc; return -1; }
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) { *out_status = status; return 0; }
        if (r < 0 && errno != EINTR) return -1;
        int f = __atomic_exchange_n(&g_forward, 0, __ATOMIC_SEQ_CST);
        if (f) kill(pid, f);
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, 0);
    }
}

int cdm_exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
int cdm_term_signal(int status) { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }
