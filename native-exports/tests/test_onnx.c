/*
 * test_onnx.c - ONNX through the C ABI (ABI 4): export, import back with the same predictions bit for bit, the
 * standardisation flag, and the errors of bad flags, missing, corrupt and unsupported files.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define N 5
#define C 2
#define H 9
#define W 7

static const char* SPEC =
    "{\"input\": [2, 9, 7], \"seed\": 3, \"layers\": ["
    "{\"type\": \"conv2d\", \"filters\": 4, \"kernel\": 3, \"padding\": \"same\"}, {\"type\": \"relu\", \"cap\": 6},"
    "{\"type\": \"avgpool2d\", \"kernel\": 2}, {\"type\": \"featuremapnorm\"}, {\"type\": \"batchnorm2d\"},"
    "{\"type\": \"flatten\"}, {\"type\": \"dropout\", \"rate\": 0.5}, {\"type\": \"dense\", \"units\": 6},"
    "{\"type\": \"tanh\"}, {\"type\": \"dense\", \"units\": 3}], \"loss\": \"cross_entropy\"}";

int main(void) {
    CHECK(hpcnn_abi_version() >= 4, "abi %u", hpcnn_abi_version());
    char dir[] = "/tmp/hpcnn-onnx-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[128], bad[128], hp[128];
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    snprintf(bad, sizeof bad, "%s/bad.onnx", dir);
    snprintf(hp, sizeof hp, "%s/m.hpcnn", dir);

    static float images[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++) images[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    float a[N * 3], b[N * 3];

    hpcnn_model* m = NULL;
    CHECK_OK(hpcnn_model_from_spec(SPEC, &m));
    CHECK_OK(hpcnn_predict(m, images, N, a, N * 3));
    CHECK_OK(hpcnn_model_save_onnx(m, path, 0));
    CHECK_FAILS(hpcnn_model_save_onnx(m, path, 6), HPCNN_INVALID_ARGUMENT, "flags");
    /* The model has no saved standardisation to embed. */
    CHECK_FAILS(hpcnn_model_save_onnx(m, path, HPCNN_ONNX_EMBED_STANDARDIZATION), HPCNN_INVALID_STATE, "standardization");
    CHECK_FAILS(hpcnn_model_save_onnx(m, NULL, 0), HPCNN_INVALID_ARGUMENT, "path");

    hpcnn_model* back = NULL;
    CHECK_OK(hpcnn_model_load_onnx(path, 0, &back));
    if (back) {
        CHECK_OK(hpcnn_predict(back, images, N, b, N * 3));
        CHECK(memcmp(a, b, sizeof a) == 0, "imported predictions differ from the model's");
        CHECK_OK(hpcnn_model_save(back, hp));
        hpcnn_model_release(back);
    }
    CHECK_FAILS(hpcnn_model_load_onnx(path, -1, &back), HPCNN_INVALID_ARGUMENT, "budget");
    CHECK_FAILS(hpcnn_model_load_onnx(path, 1000, &back), HPCNN_INVALID_FILE, "compute budget");

    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.onnx", dir);
    CHECK_FAILS(hpcnn_model_load_onnx(missing, 0, &back), HPCNN_IO_ERROR, "not found");
    write_file(bad, "\x08\x07\x12\x05garbage and more", 20);
    CHECK_FAILS(hpcnn_model_load_onnx(bad, 0, &back), HPCNN_INVALID_FILE, "ONNX");
    CHECK_FAILS(hpcnn_model_load_onnx(path, 0, NULL), HPCNN_INVALID_ARGUMENT, "out is NULL");

    hpcnn_model_release(m);
    unlink(path);
    unlink(bad);
    unlink(hp);
    rmdir(dir);
    return check_summary("test_onnx");
}
