/*
 * test_threads.c - 8 threads call hpcnn_predict, hpcnn_predict_classes and hpcnn_forward_layer on one loaded
 * model at the same time, with batches of different sizes; every answer must equal the single-threaded one.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define THREADS 8
#define CALLS 24
#define IMAGES 64
#define SIZE (28 * 28)
#define OUTPUTS 10
#define MAPS (32 * 28 * 28) /* layer 0 of the reference network */

static const int BATCHES[] = {1, 3, 8, 17, 64};
#define NBATCH ((int)(sizeof BATCHES / sizeof BATCHES[0]))

static hpcnn_model* model;
static float images[IMAGES * SIZE];
static float expected[NBATCH][IMAGES * OUTPUTS]; /* predict of images[0..b) for each batch size */
static int32_t expected_classes[IMAGES];
static float expected_maps[2 * MAPS];

typedef struct {
    int id;
    int calls, mismatches, errors;
    char error[256];
} worker;

static void* run(void* arg) {
    worker* me = arg;
    float* out = malloc(sizeof(float) * 2 * MAPS);
    int32_t classes[IMAGES];
    for (int i = 0; i < CALLS; i++) {
        int pick = (me->id * 7 + i) % (NBATCH + 2);
        hpcnn_status s;
        int same;
        if (pick < NBATCH) {
            int n = BATCHES[pick];
            s = hpcnn_predict(model, images, n, out, (int64_t)n * OUTPUTS);
            same = memcmp(out, expected[pick], sizeof(float) * (size_t)n * OUTPUTS) == 0;
        } else if (pick == NBATCH) {
            s = hpcnn_predict_classes(model, images, IMAGES, classes);
            same = memcmp(classes, expected_classes, sizeof classes) == 0;
        } else {
            s = hpcnn_forward_layer(model, 0, images, 2, out, 2 * MAPS);
            same = memcmp(out, expected_maps, sizeof(float) * 2 * MAPS) == 0;
        }
        me->calls++;
        if (s != HPCNN_OK) {
            me->errors++;
            snprintf(me->error, sizeof me->error, "%s", hpcnn_last_error());
        } else if (!same) {
            me->mismatches++;
        }
    }
    free(out);
    return NULL;
}

int main(void) {
    for (int i = 0; i < IMAGES * SIZE; i++) images[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;

    /* the reference network, saved and loaded: the threads share the loaded model */
    hpcnn_model* built = NULL;
    CHECK_OK(hpcnn_model_create(1, 28, 28, 2024, &built));
    CHECK_OK(hpcnn_add_conv2d(built, 32, 3, 3, 1, 1, HPCNN_PADDING_EXPLICIT, 1, 1, 1, 1, 1));
    CHECK_OK(hpcnn_add_relu(built, 0));
    CHECK_OK(hpcnn_add_maxpool2d(built, 2, 2, 0, 0, HPCNN_PADDING_VALID, 0, 0, 0, 0));
    CHECK_OK(hpcnn_add_conv2d(built, 64, 3, 3, 1, 1, HPCNN_PADDING_EXPLICIT, 1, 1, 1, 1, 1));
    CHECK_OK(hpcnn_add_relu(built, 0));
    CHECK_OK(hpcnn_add_maxpool2d(built, 2, 2, 0, 0, HPCNN_PADDING_VALID, 0, 0, 0, 0));
    CHECK_OK(hpcnn_add_flatten(built));
    CHECK_OK(hpcnn_add_dense(built, 128, 1));
    CHECK_OK(hpcnn_add_relu(built, 0));
    CHECK_OK(hpcnn_add_dense(built, OUTPUTS, 1));
    CHECK_OK(hpcnn_model_compile_sgd(built, HPCNN_LOSS_CROSS_ENTROPY, 0.01f, 0.9f, 0, 0.0f));
    char dir[] = "/tmp/hpcnn-threads-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/ref.hpcnn", dir);
    CHECK_OK(hpcnn_model_save(built, path));
    hpcnn_model_release(built);
    CHECK_OK(hpcnn_model_load(path, &model));
    unlink(path);
    rmdir(dir);
    if (!model) return check_summary("test_threads");

    /* single-threaded reference answers */
    for (int b = 0; b < NBATCH; b++) CHECK_OK(hpcnn_predict(model, images, BATCHES[b], expected[b], (int64_t)BATCHES[b] * OUTPUTS));
    CHECK_OK(hpcnn_predict_classes(model, images, IMAGES, expected_classes));
    CHECK_OK(hpcnn_forward_layer(model, 0, images, 2, expected_maps, 2 * MAPS));
    /* the batch-1 answer is the first row of the batch-64 one, up to rounding */
    int near = 1;
    for (int k = 0; k < OUTPUTS; k++) near &= expected[0][k] - expected[NBATCH - 1][k] < 1e-5f && expected[NBATCH - 1][k] - expected[0][k] < 1e-5f;
    CHECK(near, "batch size changes the answer");

    pthread_t threads[THREADS];
    worker workers[THREADS];
    memset(workers, 0, sizeof workers);
    for (int t = 0; t < THREADS; t++) {
        workers[t].id = t;
        CHECK(pthread_create(&threads[t], NULL, run, &workers[t]) == 0, "pthread_create");
    }
    int calls = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(workers[t].errors == 0, "thread %d: %d errors, last: %s", t, workers[t].errors, workers[t].error);
        CHECK(workers[t].mismatches == 0, "thread %d: %d of %d answers differ from the single-threaded ones", t,
              workers[t].mismatches, workers[t].calls);
        calls += workers[t].calls;
    }
    CHECK(calls == THREADS * CALLS, "%d calls", calls);
    hpcnn_model_release(model);
    printf("test_threads: %d threads x %d calls on one model\n", THREADS, CALLS);
    return check_summary("test_threads");
}
