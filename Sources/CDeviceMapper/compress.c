/* Streams for `dmsnap export`: zstd (libzstd) and gzip (zlib) compressors that write to a file
 * descriptor, and SHA-256 (OpenSSL's libcrypto). Each call returns 0, or -1 with errno set
 * (EIO for a library error). */
#define _GNU_SOURCE
#include "CDeviceMapper.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <zlib.h>
#include <zstd.h>
#include <openssl/evp.h>

struct cdm_compressor {
    int kind;             /* CDM_ZSTD or CDM_GZIP */
    ZSTD_CCtx *zstd;
    z_stream z;
    unsigned char *out;
    size_t out_cap;
};

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

cdm_compressor *cdm_compressor_new(int kind, int level)
{
    cdm_compressor *c = calloc(1, sizeof *c);
    if (!c) return 0;
    c->kind = kind;
    if (kind == CDM_ZSTD) {
        c->zstd = ZSTD_createCCtx();
        c->out_cap = ZSTD_CStreamOutSize();
        if (!c->zstd || ZSTD_isError(ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel, level))) goto fail;
    } else {
        c->out_cap = 1 << 18;
        if (deflateInit2(&c->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) goto fail;
    }
    c->out = malloc(c->out_cap);
    if (!c->out) goto fail;
    return c;
fail:
    cdm_compressor_free(c);
    errno = EINVAL;
    return 0;
}

int cdm_compress_write(cdm_compressor *c, int fd, const void *in, size_t len, int finish, uint64_t *written)
{
    if (c->kind == CDM_ZSTD) {
        ZSTD_inBuffer input = { in, len, 0 };
        for (;;) {
            ZSTD_outBuffer output = { c->out, c->out_cap, 0 };
            size_t left = ZSTD_compressStream2(c->zstd, &output, &input, finish ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left)) { errno = EIO; return -1; }
            if (write_all(fd, c->out, output.pos) != 0) return -1;
            *written += output.pos;
            if (finish ? left == 0 : input.pos == input.size) return 0;
        }
    }
    c->z.next_in = (unsigned char *)in;
    c->z.avail_in = (unsigned)len;
    for (;;) {
        c->z.next_out = c->out;
        c->z.avail_out = (unsigned)c->out_cap;
        int rc = deflate(&c->z, finish ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR) { errno = EIO; return -1; }
        size_t n = c->out_cap - c->z.avail_out;
        if (write_all(fd, c->out, n) != 0) return -1;
        *written += n;
        if (finish ? rc == Z_STREAM_END : c->z.avail_in == 0 && c->z.avail_out != 0) return 0;
    }
}

void cdm_compressor_free(cdm_compressor *c)
{
    if (!c) return;
    if (c->zstd) ZSTD_freeCCtx(c->zstd);
    if (c->kind == CDM_GZIP) deflateEnd(&c->z);
    free(c->out);
    free(c);
}

cdm_sha256 *cdm_sha256_new(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), 0) != 1) { EVP_MD_CTX_free(ctx); ctx = 0; }
    return (cdm_sha256 *)ctx;
}

void cdm_sha256_update(cdm_sha256 *h, const void *p, size_t n) { EVP_DigestUpdate((EVP_MD_CTX *)h, p, n); }

void cdm_sha256_final(cdm_sha256 *h, unsigned char out[32])
{
    unsigned len = 32;
    EVP_DigestFinal_ex((EVP_MD_CTX *)h, out, &len);
    EVP_MD_CTX_free((EVP_MD_CTX *)h);
}

int cdm_is_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    if (n == 0) return 1;
    if (c[0] || c[n - 1]) return 0;
    if (n < 2) return 1;
    /* every byte equals the one after it, and the first is zero */
    return memcmp(c, c + 1, n - 1) == 0;
}

int cdm_background_priority(void)
{
    if (setpriority(PRIO_PROCESS, 0, 10) != 0) return -1;
    /* ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 7)) */
    if (syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 7) != 0) return -1;
    return 0;
}
