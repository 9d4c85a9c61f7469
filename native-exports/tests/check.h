/*
 * check.h - the C tests' assertions: each failed check prints where and why and is counted; a test program
 * returns check_summary(), non-zero if any check failed.
 */
#ifndef HPCNN_TEST_CHECK_H
#define HPCNN_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hpcnn.h"

static int check_failures_ = 0;
static int checks_ = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        checks_++;                                                         \
        if (!(cond)) {                                                     \
            check_failures_++;                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

/* A call that must succeed. */
#define CHECK_OK(call)                                                                       \
    do {                                                                                     \
        hpcnn_status s_ = (call);                                                            \
        CHECK(s_ == HPCNN_OK, "%s returned %d: %s", #call, (int)s_, hpcnn_last_error());     \
    } while (0)

static inline const char* check_text_(const char* s) { return s ? s : ""; }

/* True if the message mentions fragment (a NULL fragment asks for nothing). */
static inline int check_mentions_(const char* message, const char* fragment) {
    return fragment == NULL || (message != NULL && strstr(message, fragment) != NULL);
}

/* A call that must fail with `expected`, leave a message, and (if `fragment` is not NULL) mention it. */
#define CHECK_FAILS(call, expected, fragment)                                                                   \
    do {                                                                                                        \
        hpcnn_status s_ = (call);                                                                               \
        const char* m_ = hpcnn_last_error();                                                                    \
        CHECK(s_ == (expected), "%s returned %d, expected %d (message: %s)", #call, (int)s_, (int)(expected), m_); \
        CHECK(m_ != NULL && m_[0] != '\0', "%s left no message", #call);                                        \
        CHECK(check_mentions_(m_, (fragment)), "%s: message \"%s\" does not mention \"%s\"", #call, m_,          \
              check_text_(fragment));                                                                   \
    } while (0)

static int check_summary(const char* name) {
    if (check_failures_ == 0) {
        printf("%s: %d checks passed\n", name, checks_);
        return 0;
    }
    printf("%s: %d of %d checks FAILED\n", name, check_failures_, checks_);
    return 1;
}

/* Writes n bytes to path (a failure to open it is a failed check). */
static inline void write_file(const char* path, const void* bytes, size_t n) {
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    fwrite(bytes, 1, n, f);
    fclose(f);
}

/* Writes an IDX file of unsigned bytes (Fashion-MNIST's format): magic 0 0 8 ndims, big-endian dims, the data. */
static inline void write_idx(const char* path, const unsigned char* data, const uint32_t* dims, int ndims) {
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    unsigned char head[4] = {0, 0, 8, (unsigned char)ndims};
    fwrite(head, 1, 4, f);
    size_t total = 1;
    for (int d = 0; d < ndims; d++) {
        unsigned char b[4] = {(unsigned char)(dims[d] >> 24), (unsigned char)(dims[d] >> 16), (unsigned char)(dims[d] >> 8),
                              (unsigned char)dims[d]};
        fwrite(b, 1, 4, f);
        total *= dims[d];
    }
    fwrite(data, 1, total, f);
    fclose(f);
}

/* Every parameter's values, in order, into out (returns the count, -1 if they do not fit). */
static inline int64_t all_weights(hpcnn_model* m, float* out, int64_t capacity) {
    int32_t layers = 0, params = 0, rank = 0;
    int32_t dims[8];
    int64_t total = 0, count = 0;
    const char* name = NULL;
    CHECK_OK(hpcnn_model_layer_count(m, &layers));
    for (int32_t l = 0; l < layers; l++) {
        CHECK_OK(hpcnn_layer_param_count(m, l, &params));
        for (int32_t p = 0; p < params; p++) {
            CHECK_OK(hpcnn_layer_param_info(m, l, p, &name, &rank, dims, &count));
            if (total + count > capacity) return -1;
            CHECK_OK(hpcnn_get_param(m, l, name, out + total, count));
            total += count;
        }
    }
    return total;
}

#endif
