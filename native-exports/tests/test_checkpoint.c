/*
 * test_checkpoint.c - checkpoints and resume through the C API (a fit stopped by its callback at random batches and
 * resumed each time ends with the same bytes as one that was not), the data check, the compute budget and the
 * messages of load errors.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define N 96
#define C 1
#define H 10
#define W 10
#define CLASSES 3

static float images[N * C * H * W];
static int32_t labels[N];

/* conv - batchnorm - relu - maxpool - flatten - dropout - dense, Adam with a step schedule: state a resume must restore */
static hpcnn_model* build(void) {
    hpcnn_model* m = NULL;
    CHECK_OK(hpcnn_model_create(C, H, W, 17, &m));
    CHECK_OK(hpcnn_add_conv2d(m, 4, 3, 3, 1, 1, HPCNN_PADDING_SAME, 0, 0, 0, 0, 1));
    CHECK_OK(hpcnn_add_batchnorm2d(m, 0, -1));
    CHECK_OK(hpcnn_add_relu(m, 0));
    CHECK_OK(hpcnn_add_maxpool2d(m, 2, 2, 0, 0, HPCNN_PADDING_VALID, 0, 0, 0, 0));
    CHECK_OK(hpcnn_add_flatten(m));
    CHECK_OK(hpcnn_add_dropout(m, 0.25f, 3));
    CHECK_OK(hpcnn_add_dense(m, CLASSES, 1));
    CHECK_OK(hpcnn_model_compile_adam(m, HPCNN_LOSS_CROSS_ENTROPY, 0.01f, 0.9f, 0.999f, 1e-8f, 0));
    CHECK_OK(hpcnn_model_set_step_schedule(m, 1, 0.5f));
    return m;
}

static int stop_after = 0, batches_seen = 0;

static int32_t on_batch(void* user, int32_t epoch, int32_t epochs, int32_t batch, int32_t batches, double loss, double acc) {
    (void)user; (void)epoch; (void)epochs; (void)batch; (void)batches; (void)loss; (void)acc;
    return ++batches_seen >= stop_after; /* non-zero: stop after this batch (an interruption) */
}

static int messages = 0;
static char last_message[1024];
static void on_message(void* user, const char* message) {
    (void)user;
    messages++;
    snprintf(last_message, sizeof last_message, "%s", message);
}

static hpcnn_fit_options* options(const char* dir, int resume, hpcnn_dataset* validation) {
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_OK(hpcnn_fit_options_set_epochs(o, 4));
    CHECK_OK(hpcnn_fit_options_set_batch_size(o, 8));
    CHECK_OK(hpcnn_fit_options_set_seed(o, 5));
    CHECK_OK(hpcnn_fit_options_set_validation(o, validation));
    if (dir) {
        CHECK_OK(hpcnn_fit_options_set_checkpoint(o, dir, 3, 0));
        CHECK_OK(hpcnn_fit_options_set_resume(o, resume));
        CHECK_OK(hpcnn_fit_options_set_message_callback(o, on_message, NULL));
    }
    return o;
}

static void test_resume_is_bit_identical(const char* tmp) {
    hpcnn_dataset *train = NULL, *val = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, C, H, W, CLASSES, &train));
    CHECK_OK(hpcnn_dataset_create(images, labels, 16, C, H, W, CLASSES, &val));

    static float expected[4096], actual[4096];
    hpcnn_model* reference = build();
    hpcnn_fit_options* o = options(NULL, 0, val);
    int32_t epochs = 0;
    CHECK_OK(hpcnn_fit(reference, train, o, &epochs));
    CHECK(epochs == 4, "epochs %d", epochs);
    int64_t n = all_weights(reference, expected, 4096);
    hpcnn_fit_options_release(o);

    char dir[512];
    snprintf(dir, sizeof dir, "%s/checkpoints", tmp);
    unsigned seed = 12345;
    int interruptions = 0;
    for (int attempt = 0; attempt < 60; attempt++) {
        hpcnn_model* m = build();
        o = options(dir, 1, val);
        seed = seed * 1103515245u + 12345u;
        stop_after = 1 + (int)((seed >> 16) % 7);
        batches_seen = 0;
        CHECK_OK(hpcnn_fit_options_set_callbacks(o, NULL, on_batch, NULL));
        CHECK_OK(hpcnn_fit(m, train, o, &epochs));
        char* json = NULL;
        CHECK_OK(hpcnn_fit_options_history_json(o, &json));
        int finished = epochs == 4 && json && strstr(json, "\"stop_reason\":null") != NULL;
        if (attempt > 0) CHECK(json && strstr(json, "\"resumed_from\":\"") != NULL, "resumed_from is set: %s", json);
        hpcnn_free(json);
        if (finished) {
            CHECK(all_weights(m, actual, 4096) == n, "parameter count");
            CHECK(memcmp(actual, expected, sizeof(float) * (size_t)n) == 0, "weights after %d interruptions differ from the uninterrupted run", interruptions);
            hpcnn_model_release(m);
            hpcnn_fit_options_release(o);
            break;
        }
        interruptions++;
        hpcnn_model_release(m);
        hpcnn_fit_options_release(o);
    }
    CHECK(interruptions >= 5, "only %d interruptions", interruptions);
    CHECK(messages > 0 && strstr(last_message, "resuming from") != NULL, "resume notices reach the callback (%d, last: %s)", messages, last_message);
    printf("  %d interruptions, resumed each time: weights bit-identical\n", interruptions);

    /* A checkpoint loads as a model, and on its own. */
    hpcnn_model* loaded = NULL;
    CHECK_OK(hpcnn_checkpoint_load(dir, &loaded));
    CHECK(all_weights(loaded, actual, 4096) == n && memcmp(actual, expected, sizeof(float) * (size_t)n) == 0, "the newest checkpoint holds the final weights");
    hpcnn_model_release(loaded);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", tmp);
    CHECK_FAILS(hpcnn_checkpoint_load(missing, &loaded), HPCNN_IO_ERROR, "not found");

    /* NaN in the data is refused before training, by sample; turned off, the run diverges. */
    images[5 * H * W + 7] = NAN;
    hpcnn_dataset* bad = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, C, H, W, CLASSES, &bad));
    hpcnn_model* m = build();
    CHECK_FAILS(hpcnn_fit(m, bad, NULL, NULL), HPCNN_INVALID_ARGUMENT, "sample 5 holds NaN");
    o = options(NULL, 0, val);
    CHECK_OK(hpcnn_fit_options_set_check_data(o, 0));
    CHECK_OK(hpcnn_fit_options_set_batch_size(o, N));
    CHECK_FAILS(hpcnn_fit(m, bad, o, NULL), HPCNN_NUMERIC_ERROR, "NaN");
    images[5 * H * W + 7] = 0;
    hpcnn_fit_options_release(o);
    hpcnn_model_release(m);
    hpcnn_dataset_release(bad);
    hpcnn_dataset_release(train);
    hpcnn_dataset_release(val);
}

static void test_compute_budget(const char* tmp) {
    /* A stride-1 64x64 average pool over a 2048x2048 input: 17 GFLOP per image in a spec of 150 bytes. */
    const char* costly = "{\"input\": [1, 2048, 2048], \"layers\": [{\"type\": \"avgpool2d\", \"kernel\": 64, \"stride\": 1, \"padding\": 32}, {\"type\": \"flatten\"}]}";
    hpcnn_model* m = NULL;
    CHECK(hpcnn_default_max_flops_per_image() == 10000000000LL, "default budget %lld", (long long)hpcnn_default_max_flops_per_image());
    CHECK_FAILS(hpcnn_model_from_spec(costly, &m), HPCNN_INVALID_FILE, "layers[0] (avgpool2d");
    CHECK(strstr(hpcnn_last_error(), "17.") && strstr(hpcnn_last_error(), "GFLOP per image"), "the cost is named: %s", hpcnn_last_error());
    CHECK_FAILS(hpcnn_model_from_spec_with_budget(costly, -1, &m), HPCNN_INVALID_ARGUMENT, "budget");
    CHECK_OK(hpcnn_model_from_spec_with_budget(costly, 20000000000LL, &m));
    char path[600];
    snprintf(path, sizeof path, "%s/costly.hpcnn", tmp);
    CHECK_OK(hpcnn_model_save(m, path));
    hpcnn_model_release(m);
    m = NULL;
    CHECK_FAILS(hpcnn_model_load(path, &m), HPCNN_INVALID_FILE, "compute budget of 10 GFLOP");
    CHECK_OK(hpcnn_model_load_with_budget(path, 20000000000LL, &m));
    hpcnn_model_release(m);

    /* Load errors that used to mislead. */
    CHECK_FAILS(hpcnn_model_load(tmp, &m), HPCNN_IO_ERROR, "is a directory, not a model file");
}

static int last_batch_seen = 0;
static int32_t count_batch(void* user, int32_t epoch, int32_t epochs, int32_t batch, int32_t batches, double loss, double acc) {
    (void)user; (void)epoch; (void)epochs; (void)loss; (void)acc;
    batches_seen++;
    last_batch_seen = batch == batches;
    return 0;
}

/* The batch callback interval: 0 calls after every batch; a long interval only after each epoch's first and last batch. */
static void test_batch_callback_interval(void) {
    hpcnn_dataset* train = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, C, H, W, CLASSES, &train));
    for (int pass = 0; pass < 2; pass++) {
        hpcnn_model* m = build();
        hpcnn_fit_options* o = NULL;
        CHECK_OK(hpcnn_fit_options_create(&o));
        CHECK_OK(hpcnn_fit_options_set_epochs(o, 3));
        CHECK_OK(hpcnn_fit_options_set_batch_size(o, 4));
        CHECK_OK(hpcnn_fit_options_set_callbacks(o, NULL, count_batch, NULL));
        CHECK_OK(hpcnn_fit_options_set_batch_callback_interval(o, pass == 0 ? 0.0 : 3600.0));
        batches_seen = 0;
        CHECK_OK(hpcnn_fit(m, train, o, NULL));
        int per_epoch = (N + 3) / 4;
        CHECK(batches_seen == (pass == 0 ? 3 * per_epoch : 3 * 2), "interval %s: %d callbacks", pass == 0 ? "0" : "1 h", batches_seen);
        CHECK(last_batch_seen, "the epoch's last batch always calls back");
        hpcnn_fit_options_release(o);
        hpcnn_model_release(m);
    }
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_FAILS(hpcnn_fit_options_set_batch_callback_interval(o, -1), HPCNN_INVALID_ARGUMENT, "0-86400 seconds");
    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(train);
}

int main(void) {
    for (int i = 0; i < N * C * H * W; i++) images[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < N; i++) labels[i] = (i * 31 + i / 5) % CLASSES;
    char tmp[] = "/tmp/hpcnn-ckpt-c-XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    test_resume_is_bit_identical(tmp);
    test_compute_budget(tmp);
    test_batch_callback_interval();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return check_summary("test_checkpoint");
}
