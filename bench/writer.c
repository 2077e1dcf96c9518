/*
 * bench-writer: the benchmark's victim workload. One thread overwrites FILE in 4 KiB
 * blocks, round robin over a preallocated region, with pwrite + fdatasync per block, and
 * records every operation's start and end (CLOCK_MONOTONIC). The main thread reads
 * commands on stdin, one per line, and answers on stdout:
 *
 *   m   mark: a measurement window starts now            -> "marked"
 *   r   report: the window ends now; waits until the write in flight at that moment has
 *       finished, then prints the longest single write (pwrite+fdatasync) that overlapped
 *       the window                                       -> "report max_ms=X ops=N window_ms=W"
 *   q   quit                                             -> "bye"
 *
 * Prints "ready" once the region is allocated and the first write has finished. Any failed
 * write prints "error ..." and exits 3 (a snapshot must never fail the workload).
 *
 * usage: bench-writer FILE [REGION_BYTES]   (default 4 MiB)
 * build: cc -O2 -pthread -o bench-writer bench/writer.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define RING (1u << 20)

struct op {
    double start, end; /* ms, CLOCK_MONOTONIC */
};

static struct op *ring;
static atomic_ulong done; /* operations completed; ring[(done-1) % RING] is the newest */
static atomic_int failed;
static int fd;
static long blocks;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *writer(void *arg)
{
    (void)arg;
    static char buf[BLOCK] __attribute__((aligned(4096)));
    unsigned long n = 0;
    for (;;) {
        memset(buf, (int)(n & 0xff), sizeof buf);
        snprintf(buf, 64, "bench-writer op %lu\n", n);
        double s = now_ms();
        off_t off = (off_t)(n % (unsigned long)blocks) * BLOCK;
        if (pwrite(fd, buf, BLOCK, off) != BLOCK || fdatasync(fd) != 0) {
            printf("error write/fdatasync at op %lu: %s\n", n, strerror(errno));
            fflush(stdout);
            atomic_store(&failed, 1);
            _exit(3);
        }
        double e = now_ms();
        ring[n % RING] = (struct op){s, e};
        n++;
        atomic_store_explicit(&done, n, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench-writer FILE [REGION_BYTES]\n");
        return 2;
    }
    long region = argc == 3 ? atol(argv[2]) : 4L << 20;
    if (region < BLOCK) {
        fprintf(stderr, "bench-writer: region too small\n");
        return 2;
    }
    blocks = region / BLOCK;
    fd = open(argv[1], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "bench-writer: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* allocate the region with real blocks, so every later write is an overwrite */
    static char zero[1 << 16];
    for (long off = 0; off < blocks * BLOCK; off += sizeof zero) {
        size_t len = (size_t)(blocks * BLOCK - off) < sizeof zero ? (size_t)(blocks * BLOCK - off) : sizeof zero;
        if (pwrite(fd, zero, len, off) != (ssize_t)len) {
            fprintf(stderr, "bench-writer: preallocate: %s\n", strerror(errno));
            return 1;
        }
    }
    if (fsync(fd) != 0) {
        fprintf(stderr, "bench-writer: fsync: %s\n", strerror(errno));
        return 1;
    }
    ring = calloc(RING, sizeof *ring);
    if (!ring) return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, writer, NULL) != 0) return 1;
    while (atomic_load(&done) == 0) usleep(1000);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");

    double mark = now_ms();
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 'm') {
            mark = now_ms();
            printf("marked\n");
        } else if (line[0] == 'r') {
            double end = now_ms();
            /* wait for the write in flight at `end` (at most 60 s) */
            for (int i = 0; i < 60000; i++) {
                unsigned long d = atomic_load_explicit(&done, memory_order_acquire);
                if (d && ring[(d - 1) % RING].end >= end) break;
                usleep(1000);
            }
            unsigned long d = atomic_load_explicit(&done, memory_order_acquire);
            double worst = 0;
            unsigned long ops = 0;
            for (unsigned long k = d; k > 0 && d - k < RING; k--) {
                struct op o = ring[(k - 1) % RING];
                if (o.end < mark) break;
                if (o.start > end) continue;
                ops++;
                if (o.end - o.start > worst) worst = o.end - o.start;
            }
            printf("report max_ms=%.3f ops=%lu window_ms=%.3f\n", worst, ops, end - mark);
        } else if (line[0] == 'q') {
            break;
        }
    }
    printf("bye\n");
    return atomic_load(&failed) ? 3 : 0;
}
