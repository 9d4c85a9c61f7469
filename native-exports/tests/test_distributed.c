/*
 * test_distributed.c - the distributed-training calls (ABI 10). Alone (make test): rank 0 of 1, the mode's validation,
 * a fit that stays one process (history "ranks": 1) in modes -1 and 0, finalize with MPI never started, mode 1 starting
 * MPI as a launch of one process (or saying what to install where Open MPI is missing).
 * Under mpirun (build/test-native.sh: mpirun -np 2 and -np 4): rank and size are the launch's, a fit in the default
 * mode is distributed ("ranks": N) and its weights equal bit for bit those of a one-process fit (mode 0) that this
 * process runs afterwards with the same seed and batch size; every rank checks its own. Once MPI ended
 * (hpcnn_distributed_finalize), fits that need it are refused with INVALID_STATE and fits alone still run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define N 100 /* not a multiple of the batch: the last batch splits unevenly over the ranks */
#define C 1
#define H 8
#define W 8
#define CLASSES 3
#define BATCH 16
#define MAX_WEIGHTS 4096

static float images[N * C * H * W];
static int32_t labels[N];

/* conv - batchnorm - relu - maxpool - flatten - dropout - dense, SGD with momentum: every layer whose gradient or
   statistics the ranks combine. */
static hpcnn_model* build(void) {
    hpcnn_model* m = NULL;
    CHECK_OK(hpcnn_model_create(C, H, W, 23, &m));
    CHECK_OK(hpcnn_add_conv2d(m, 4, 3, 3, 1, 1, HPCNN_PADDING_SAME, 0, 0, 0, 0, 1));
    CHECK_OK(hpcnn_add_batchnorm2d(m, 0, -1));
    CHECK_OK(hpcnn_add_relu(m, 0));
    CHECK_OK(hpcnn_add_maxpool2d(m, 2, 2, 0, 0, HPCNN_PADDING_VALID, 0, 0, 0, 0));
    CHECK_OK(hpcnn_add_flatten(m));
    CHECK_OK(hpcnn_add_dropout(m, 0.25f, 5));
    CHECK_OK(hpcnn_add_dense(m, CLASSES, 1));
    CHECK_OK(hpcnn_model_compile_sgd(m, HPCNN_LOSS_CROSS_ENTROPY, 0.05f, 0.9f, 0, 0.0f));
    return m;
}

/* Trains a fresh model for 2 epochs with the given distributed mode; its weights go to out, the history's "ranks" to
   *ranks (-1 if the JSON lacks it). */
static float initial[MAX_WEIGHTS];

static int64_t train(int32_t mode, float* out, int* ranks) {
    hpcnn_model* m = build();
    int64_t before = all_weights(m, initial, MAX_WEIGHTS);
    hpcnn_dataset* data = NULL;
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, C, H, W, CLASSES, &data));
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_OK(hpcnn_fit_options_set_epochs(o, 2));
    CHECK_OK(hpcnn_fit_options_set_batch_size(o, BATCH));
    CHECK_OK(hpcnn_fit_options_set_seed(o, 99));
    CHECK_OK(hpcnn_fit_options_set_distributed(o, mode));
    int32_t epochs = 0;
    CHECK_OK(hpcnn_fit(m, data, o, &epochs));
    CHECK(epochs == 2, "mode %d: %d epochs", mode, epochs);
    char* json = NULL;
    *ranks = -1;
    CHECK_OK(hpcnn_fit_options_history_json(o, &json));
    if (json) {
        const char* r = strstr(json, "\"ranks\":");
        if (r) *ranks = atoi(r + strlen("\"ranks\":"));
        CHECK(strstr(json, "\"communication_seconds\":") != NULL, "no communication_seconds in %s", json);
        hpcnn_free(json);
    }
    int64_t n = all_weights(m, out, MAX_WEIGHTS), moved = 0;
    for (int64_t i = 0; i < n && n == before; i++) moved += memcmp(&initial[i], &out[i], sizeof(float)) != 0;
    CHECK(moved > n / 2, "mode %d: training moved %lld of %lld weights", mode, (long long)moved, (long long)n);
    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(data);
    hpcnn_model_release(m);
    return n;
}

/* One epoch of a fresh model with the given mode: the fit's status; *ranks (may be NULL) gets the history's "ranks". */
static hpcnn_status fit_status(int32_t mode, int* ranks) {
    hpcnn_model* m = build();
    hpcnn_dataset* data = NULL;
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, C, H, W, CLASSES, &data));
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_OK(hpcnn_fit_options_set_distributed(o, mode));
    hpcnn_status s = hpcnn_fit(m, data, o, NULL);
    if (s == HPCNN_OK && ranks != NULL) {
        char* json = NULL;
        CHECK_OK(hpcnn_fit_options_history_json(o, &json));
        const char* r = json ? strstr(json, "\"ranks\":") : NULL;
        *ranks = r ? atoi(r + strlen("\"ranks\":")) : -1;
        hpcnn_free(json);
    }
    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(data);
    hpcnn_model_release(m);
    return s;
}

static float distributed[MAX_WEIGHTS], alone[MAX_WEIGHTS];

int main(void) {
    CHECK(hpcnn_abi_version() >= 10, "abi %u", hpcnn_abi_version());
    hpcnn_set_threads(2);
    uint32_t state = 12345;
    for (int i = 0; i < N * C * H * W; i++) {
        state = state * 1664525u + 1013904223u;
        images[i] = (float)(state >> 8) / 16777216.0f;
    }
    for (int i = 0; i < N; i++) labels[i] = i % CLASSES;

    int32_t rank = hpcnn_distributed_rank(), size = hpcnn_distributed_size();
    const char* env_size = getenv("OMPI_COMM_WORLD_SIZE");
    int launched = env_size != NULL ? atoi(env_size) : 1;
    CHECK(size == launched, "size %d, the launch has %d", size, launched);
    CHECK(rank >= 0 && rank < size, "rank %d of %d", rank, size);
    if (launched == 1) CHECK(rank == 0, "rank %d outside mpirun", rank);

    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_OK(hpcnn_fit_options_set_distributed(o, -1));
    CHECK_OK(hpcnn_fit_options_set_distributed(o, 0));
    CHECK_OK(hpcnn_fit_options_set_distributed(o, 1));
    CHECK_FAILS(hpcnn_fit_options_set_distributed(o, 2), HPCNN_INVALID_ARGUMENT, "distributed mode must be -1");
    CHECK_FAILS(hpcnn_fit_options_set_distributed(o, -2), HPCNN_INVALID_ARGUMENT, "got -2");
    CHECK_FAILS(hpcnn_fit_options_set_distributed(NULL, 0), HPCNN_INVALID_ARGUMENT, "options is NULL");
    hpcnn_fit_options_release(o);

    int ranks_d = 0, ranks_a = 0;
    int64_t nd = train(-1, distributed, &ranks_d); /* the default: distributed exactly when launched with > 1 process */
    int64_t na = train(0, alone, &ranks_a);
    CHECK(nd > 0 && nd == na, "weights: %lld and %lld", (long long)nd, (long long)na);
    CHECK(ranks_d == launched, "the default mode's fit ran on %d rank(s), the launch has %d", ranks_d, launched);
    CHECK(ranks_a == 1, "mode 0 ran on %d ranks", ranks_a);
    int64_t differ = 0, first = -1;
    for (int64_t i = 0; i < nd && nd == na; i++)
        if (memcmp(&distributed[i], &alone[i], sizeof(float)) != 0) {
            if (first < 0) first = i;
            differ++;
        }
    CHECK(differ == 0, "rank %d of %d: %lld of %lld weights differ from one process's (first: %lld, %.9g vs %.9g)", rank, size,
          (long long)differ, (long long)nd, (long long)first, first >= 0 ? distributed[first] : 0.0, first >= 0 ? alone[first] : 0.0);

    /* Ends MPI if the first fit started it (under mpirun), nothing otherwise; a second call does nothing either. */
    CHECK_OK(hpcnn_distributed_finalize());
    CHECK_OK(hpcnn_distributed_finalize());
    int mpi_started = launched > 1;
    if (launched == 1) {
        /* Mode 1 in a process started alone: MPI starts as a launch of one process (Open MPI's singleton), and the fit
           is a one-rank fit; without Open MPI the fit says what to install. */
        hpcnn_status s = fit_status(1, &ranks_d);
        const char* message = hpcnn_last_error();
        CHECK(s == HPCNN_OK || (s == HPCNN_INVALID_STATE && strstr(message, "apt-get install openmpi-bin") != NULL),
              "mode 1 alone: status %d (%s)", (int)s, message);
        if (s == HPCNN_OK) CHECK(ranks_d == 1, "mode 1 alone ran on %d ranks", ranks_d);
        mpi_started = s == HPCNN_OK;
        CHECK_OK(hpcnn_distributed_finalize());
    }
    if (mpi_started) {
        /* MPI cannot start twice in one process: a required distributed fit after finalize is refused (not a crash). */
        CHECK_FAILS(fit_status(1, NULL), HPCNN_INVALID_STATE, "finalized");
        CHECK_FAILS(fit_status(1, NULL), HPCNN_INVALID_STATE, "finalized");
        /* Under mpirun the default mode wants the launch's ranks, which cannot meet again; training alone still works. */
        if (launched > 1) CHECK_FAILS(fit_status(-1, NULL), HPCNN_INVALID_STATE, "finalized");
        ranks_d = 0;
        CHECK_OK(fit_status(0, &ranks_d));
        CHECK(ranks_d == 1, "mode 0 after finalize ran on %d ranks", ranks_d);
    }
    char name[64];
    snprintf(name, sizeof name, "test_distributed (rank %d of %d)", rank, size);
    return check_summary(name);
}
