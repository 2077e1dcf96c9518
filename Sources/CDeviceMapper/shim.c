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
