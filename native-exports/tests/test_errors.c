/*
 * test_errors.c - every error path returns its status and a message, and nothing crashes: NULL arguments,
 * released and foreign handles, wrong buffer sizes, bad enum values, calls in the wrong state, bad files.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define N 4
#define PIXELS (N * 1 * 6 * 6)

static float images[PIXELS];
static int32_t labels[N] = {0, 1, 1, 0};

/* A compiled model for 1x6x6 inputs: flatten -> dense(2). */
static hpcnn_model* small_model(void) {
    hpcnn_model* m = NULL;
    CHECK_OK(hpcnn_model_create(1, 6, 6, 7, &m));
    CHECK_OK(hpcnn_add_flatten(m));
    CHECK_OK(hpcnn_add_dense(m, 2, 1));
    CHECK_OK(hpcnn_model_compile_sgd(m, HPCNN_LOSS_CROSS_ENTROPY, 0.1f, 0.0f, 0, 0.0f));
    return m;
}

static void* read_last_error(void* out) {
    *(const char**)out = hpcnn_last_error();
    return NULL;
}

static void test_library_basics(void) {
    CHECK(hpcnn_abi_version() >= HPCNN_ABI_VERSION, "abi %u", hpcnn_abi_version());
    CHECK(hpcnn_version() != NULL && hpcnn_version()[0] != '\0', "empty version");
    const char* path = hpcnn_kernel_path();
    CHECK(strcmp(path, "avx2-fma") == 0 || strcmp(path, "scalar") == 0, "kernel path %s", path);
    /* libhpcnn.so is the x86-64-v3 build: AVX2 tiles (the AVX-512 ones are in libhpcnn-avx512.so). */
    const char* gemm = hpcnn_gemm_kernel();
    CHECK(strcmp(gemm, strcmp(path, "scalar") == 0 ? "scalar 6x16" : "avx2 6x16") == 0, "gemm kernel %s", gemm);
    hpcnn_free(NULL);
    int32_t threads = hpcnn_get_threads();
    CHECK(threads >= 1, "threads %d", threads);
    CHECK_FAILS(hpcnn_set_threads(0), HPCNN_INVALID_ARGUMENT, "between 1 and 256");
    CHECK_FAILS(hpcnn_set_threads(257), HPCNN_INVALID_ARGUMENT, "257");
    /* messages speak C: no C# parameter names appended */
    CHECK(strstr(hpcnn_last_error(), "(Parameter") == NULL, "message: %s", hpcnn_last_error());
    CHECK(hpcnn_get_threads() == threads, "a refused count changed the threads");
    /* the message is per thread: a fresh thread has none */
    const char* other = NULL;
    pthread_t t;
    pthread_create(&t, NULL, read_last_error, &other);
    pthread_join(t, NULL);
    CHECK(other != NULL && other[0] == '\0', "a new thread sees \"%s\"", other ? other : "(null)");
    CHECK(strstr(hpcnn_last_error(), "257") != NULL, "this thread's message is gone: %s", hpcnn_last_error());
}

static void test_null_arguments(void) {
    hpcnn_model* m = small_model();
    int32_t i32 = 0;
    int64_t i64 = 0;
    double d = 0;
    char* text = NULL;
    const char* name = NULL;
    float out[N * 2];

    CHECK_FAILS(hpcnn_model_create(1, 6, 6, 0, NULL), HPCNN_INVALID_ARGUMENT, "out is NULL");
    CHECK_FAILS(hpcnn_model_from_spec(NULL, (hpcnn_model**)&text), HPCNN_INVALID_ARGUMENT, "json is NULL");
    CHECK_FAILS(hpcnn_model_load(NULL, (hpcnn_model**)&text), HPCNN_INVALID_ARGUMENT, "path is NULL");
    CHECK_FAILS(hpcnn_model_save(NULL, "/tmp/x.hpcnn"), HPCNN_INVALID_ARGUMENT, "model is NULL");
    CHECK_FAILS(hpcnn_model_save(m, NULL), HPCNN_INVALID_ARGUMENT, "path is NULL");
    CHECK_FAILS(hpcnn_model_spec(m, NULL), HPCNN_INVALID_ARGUMENT, "out_json is NULL");
    CHECK_FAILS(hpcnn_model_summary(NULL, &text), HPCNN_INVALID_ARGUMENT, "model is NULL");
    CHECK_FAILS(hpcnn_model_layer_count(m, NULL), HPCNN_INVALID_ARGUMENT, "out_count is NULL");
    CHECK_FAILS(hpcnn_model_input_shape(m, &i32, NULL, &i32), HPCNN_INVALID_ARGUMENT, "out_h is NULL");
    CHECK_FAILS(hpcnn_model_output_size(NULL, &i32), HPCNN_INVALID_ARGUMENT, "model is NULL");
    CHECK_FAILS(hpcnn_model_parameter_count(m, NULL), HPCNN_INVALID_ARGUMENT, "out_count is NULL");
    CHECK_FAILS(hpcnn_model_epochs_trained(m, NULL), HPCNN_INVALID_ARGUMENT, "out_epochs is NULL");
    CHECK_FAILS(hpcnn_add_relu(NULL, 0), HPCNN_INVALID_ARGUMENT, "model is NULL");
    CHECK_FAILS(hpcnn_add_layer_json(m, NULL), HPCNN_INVALID_ARGUMENT, "json is NULL");
    CHECK_FAILS(hpcnn_layer_kind(m, 0, NULL), HPCNN_INVALID_ARGUMENT, "out_kind is NULL");
    CHECK_FAILS(hpcnn_layer_param_info(m, 1, 0, &name, &i32, NULL, &i64), HPCNN_INVALID_ARGUMENT, "out_dims is NULL");
    CHECK_FAILS(hpcnn_get_param(m, 1, NULL, out, 2), HPCNN_INVALID_ARGUMENT, "name is NULL");
    CHECK_FAILS(hpcnn_get_param(m, 1, "bias", NULL, 2), HPCNN_INVALID_ARGUMENT, "out_values is NULL");
    CHECK_FAILS(hpcnn_set_param(m, 1, "bias", NULL, 2), HPCNN_INVALID_ARGUMENT, "values is NULL");
    CHECK_FAILS(hpcnn_is_frozen(m, 0, NULL), HPCNN_INVALID_ARGUMENT, "out_frozen is NULL");
    CHECK_FAILS(hpcnn_predict(m, NULL, N, out, N * 2), HPCNN_INVALID_ARGUMENT, "input is NULL");
    CHECK_FAILS(hpcnn_predict(m, images, N, NULL, N * 2), HPCNN_INVALID_ARGUMENT, "out is NULL");
    CHECK_FAILS(hpcnn_predict_classes(m, images, N, NULL), HPCNN_INVALID_ARGUMENT, "out_classes is NULL");
    CHECK_FAILS(hpcnn_forward_layer(m, 0, images, N, NULL, PIXELS), HPCNN_INVALID_ARGUMENT, "out is NULL");
    CHECK_FAILS(hpcnn_dataset_create(NULL, labels, N, 1, 6, 6, 2, (hpcnn_dataset**)&text), HPCNN_INVALID_ARGUMENT, "images is NULL");
    CHECK_FAILS(hpcnn_dataset_create(images, NULL, N, 1, 6, 6, 2, (hpcnn_dataset**)&text), HPCNN_INVALID_ARGUMENT, "labels is NULL");
    CHECK_FAILS(hpcnn_dataset_load_idx(NULL, "x", 0, (hpcnn_dataset**)&text), HPCNN_INVALID_ARGUMENT, "images_path is NULL");
    CHECK_FAILS(hpcnn_dataset_info(NULL, &i64, &i32, &i32, &i32, &i32), HPCNN_INVALID_ARGUMENT, "dataset is NULL");
    CHECK_FAILS(hpcnn_fit(m, NULL, NULL, NULL), HPCNN_INVALID_ARGUMENT, "train is NULL");
    CHECK_FAILS(hpcnn_evaluate(m, NULL, 0, &d, &d), HPCNN_INVALID_ARGUMENT, NULL);
    CHECK_FAILS(hpcnn_fit_options_create(NULL), HPCNN_INVALID_ARGUMENT, "out is NULL");
    CHECK_FAILS(hpcnn_fit_options_set_epochs(NULL, 1), HPCNN_INVALID_ARGUMENT, "options is NULL");
    CHECK_FAILS(hpcnn_train_batch(m, images, NULL, N, &d), HPCNN_INVALID_ARGUMENT, "labels is NULL");
    /* releases accept NULL */
    hpcnn_model_release(NULL);
    hpcnn_dataset_release(NULL);
    hpcnn_fit_options_release(NULL);
    hpcnn_model_release(m);
}

static void test_released_and_foreign_handles(void) {
    hpcnn_model* m = small_model();
    hpcnn_dataset* ds = NULL;
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, 1, 6, 6, 2, &ds));
    CHECK_OK(hpcnn_fit_options_create(&o));
    int32_t count = -1;

    /* a handle of the wrong kind */
    CHECK_FAILS(hpcnn_model_layer_count((hpcnn_model*)ds, &count), HPCNN_INVALID_ARGUMENT, "is a dataset, not a model");
    CHECK_FAILS(hpcnn_fit(m, (hpcnn_dataset*)o, NULL, NULL), HPCNN_INVALID_ARGUMENT, "not a dataset");
    hpcnn_model_release((hpcnn_model*)ds); /* ignored: not a model */
    int64_t n = 0;
    int32_t c, h, w, k;
    CHECK_OK(hpcnn_dataset_info(ds, &n, &c, &h, &w, &k));
    CHECK(n == N && c == 1 && h == 6 && w == 6 && k == 2, "dataset info %lld %d %d %d %d", (long long)n, c, h, w, k);

    /* pointers that never were handles */
    int local = 0;
    CHECK_FAILS(hpcnn_model_layer_count((hpcnn_model*)&local, &count), HPCNN_INVALID_ARGUMENT, "not a live handle");
    CHECK_FAILS(hpcnn_model_layer_count((hpcnn_model*)(uintptr_t)0x1234, &count), HPCNN_INVALID_ARGUMENT, "not a live handle");
    hpcnn_model_release((hpcnn_model*)&local); /* ignored */

    /* released handles */
    hpcnn_model_release(m);
    hpcnn_model_release(m); /* twice is fine */
    hpcnn_dataset_release(ds);
    hpcnn_fit_options_release(o);
    CHECK_FAILS(hpcnn_model_layer_count(m, &count), HPCNN_INVALID_ARGUMENT, "not a live handle");
    CHECK(count == -1, "a failed call wrote its output");
    float out[2];
    CHECK_FAILS(hpcnn_predict(m, images, 1, out, 2), HPCNN_INVALID_ARGUMENT, "not a live handle");
    CHECK_FAILS(hpcnn_dataset_info(ds, &n, &c, &h, &w, &k), HPCNN_INVALID_ARGUMENT, "not a live handle");
    CHECK_FAILS(hpcnn_fit_options_set_epochs(o, 2), HPCNN_INVALID_ARGUMENT, "not a live handle");
}

static void test_wrong_sizes_and_values(void) {
    hpcnn_model* m = small_model();
    float out[64];
    int32_t classes[N];
    for (int i = 0; i < 64; i++) out[i] = 42.0f;

    CHECK_FAILS(hpcnn_predict(m, images, N, out, N * 2 - 1), HPCNN_INVALID_ARGUMENT, "expected 8 values");
    CHECK_FAILS(hpcnn_predict(m, images, N, out, N * 2 + 1), HPCNN_INVALID_ARGUMENT, "got a buffer of 9");
    CHECK(out[0] == 42.0f && out[7] == 42.0f, "a refused predict wrote its output");
    CHECK_FAILS(hpcnn_predict(m, images, 0, out, 0), HPCNN_INVALID_ARGUMENT, "n must be at least 1");
    CHECK_FAILS(hpcnn_predict(m, images, -3, out, 0), HPCNN_INVALID_ARGUMENT, "n must be at least 1");
    CHECK_FAILS(hpcnn_predict_classes(m, images, 0, classes), HPCNN_INVALID_ARGUMENT, NULL);
    CHECK_FAILS(hpcnn_forward_layer(m, 0, images, N, out, 10), HPCNN_INVALID_ARGUMENT, "expected 144 values");
    CHECK_FAILS(hpcnn_forward_layer(m, 5, images, N, out, 10), HPCNN_INVALID_ARGUMENT, "layer 5 does not exist");
    CHECK_FAILS(hpcnn_forward_layer(m, -1, images, N, out, 10), HPCNN_INVALID_ARGUMENT, "does not exist");
    CHECK_FAILS(hpcnn_get_param(m, 1, "weight", out, 10), HPCNN_INVALID_ARGUMENT, "expected 72 values");
    CHECK_FAILS(hpcnn_set_param(m, 1, "weight", out, 73), HPCNN_INVALID_ARGUMENT, "expected 72 values");
    CHECK_FAILS(hpcnn_get_param(m, 1, "gamma", out, 2), HPCNN_INVALID_ARGUMENT, "has no parameter 'gamma'");
    CHECK_FAILS(hpcnn_get_param(m, 0, "weight", out, 2), HPCNN_INVALID_ARGUMENT, "layer 0 (flatten) has no parameter");

    const char* name = NULL;
    int32_t rank = 0, dims[8];
    int64_t count = 0;
    CHECK_FAILS(hpcnn_layer_param_info(m, 1, 2, &name, &rank, dims, &count), HPCNN_INVALID_ARGUMENT, "index 2 does not exist");
    CHECK_FAILS(hpcnn_layer_param_info(m, 0, 0, &name, &rank, dims, &count), HPCNN_INVALID_ARGUMENT, NULL);
    const char* kind = NULL;
    CHECK_FAILS(hpcnn_layer_kind(m, 2, &kind), HPCNN_INVALID_ARGUMENT, "layer 2 does not exist");
    CHECK_FAILS(hpcnn_set_frozen(m, 9, 1), HPCNN_INVALID_ARGUMENT, "layer 9");

    /* bad dimensions and enum values */
    hpcnn_model* bad = NULL;
    CHECK_FAILS(hpcnn_model_create(0, 28, 28, 1, &bad), HPCNN_INVALID_ARGUMENT, NULL);
    CHECK_FAILS(hpcnn_model_create(1, -5, 28, 1, &bad), HPCNN_INVALID_ARGUMENT, NULL);
    CHECK(bad == NULL, "a failed create wrote its output");
    hpcnn_model* img = NULL;
    CHECK_OK(hpcnn_model_create(1, 8, 8, 1, &img));
    CHECK_FAILS(hpcnn_add_conv2d(img, 4, 3, 3, 1, 1, 7, 0, 0, 0, 0, 1), HPCNN_INVALID_ARGUMENT, "padding_mode");
    CHECK_FAILS(hpcnn_add_conv2d(img, 4, 3, 3, 1, 1, HPCNN_PADDING_VALID, 1, 0, 0, 0, 1), HPCNN_INVALID_ARGUMENT, "pad_* must be 0");
    CHECK_FAILS(hpcnn_add_conv2d(img, 0, 3, 3, 1, 1, HPCNN_PADDING_VALID, 0, 0, 0, 0, 1), HPCNN_INVALID_ARGUMENT, NULL);
    CHECK_FAILS(hpcnn_add_conv2d(img, 4, 9, 9, 1, 1, HPCNN_PADDING_VALID, 0, 0, 0, 0, 1), HPCNN_INVALID_ARGUMENT, "layer 0 (conv2d)");
    CHECK_FAILS(hpcnn_add_maxpool2d(img, 2, 2, 0, 0, 3, 0, 0, 0, 0), HPCNN_INVALID_ARGUMENT, "padding_mode");
    /* geometry no real network has: pooling padding above half the window, convolution padding of the kernel size,
       a window larger than the padded input */
    CHECK_FAILS(hpcnn_add_avgpool2d(img, 4, 4, 1, 1, HPCNN_PADDING_EXPLICIT, 3, 3, 3, 3), HPCNN_INVALID_ARGUMENT, "at most half the 4x4 window");
    CHECK_FAILS(hpcnn_add_maxpool2d(img, 3, 3, 1, 1, HPCNN_PADDING_EXPLICIT, 2, 0, 0, 0), HPCNN_INVALID_ARGUMENT, "at most half the 3x3 window");
    CHECK_FAILS(hpcnn_add_conv2d(img, 2, 3, 3, 1, 1, HPCNN_PADDING_EXPLICIT, 3, 3, 3, 3, 1), HPCNN_INVALID_ARGUMENT, "smaller than the 3x3 kernel");
    CHECK_FAILS(hpcnn_add_avgpool2d(img, 12, 12, 1, 1, HPCNN_PADDING_EXPLICIT, 1, 1, 1, 1), HPCNN_INVALID_ARGUMENT, "does not fit the 8x8 input");
    CHECK_FAILS(hpcnn_add_dense(img, 10, 1), HPCNN_INVALID_ARGUMENT, "add a flatten layer");
    CHECK_FAILS(hpcnn_add_dropout(img, 1.5f, 1), HPCNN_INVALID_ARGUMENT, NULL);
    CHECK_FAILS(hpcnn_add_layer_json(img, "{\"type\":\"conv2d\",\"filters\":4}"), HPCNN_INVALID_ARGUMENT, "kernel");
    CHECK_FAILS(hpcnn_add_layer_json(img, "not json"), HPCNN_INVALID_ARGUMENT, "not valid JSON");
    CHECK_FAILS(hpcnn_add_layer_json(img, "{\"type\":\"dense\",\"units\":3}"), HPCNN_INVALID_ARGUMENT, "flatten");
    int32_t layers = -1;
    CHECK_OK(hpcnn_model_layer_count(img, &layers));
    CHECK(layers == 0, "refused layers were added: %d", layers);
    CHECK_FAILS(hpcnn_model_compile_sgd(img, HPCNN_LOSS_CROSS_ENTROPY, 0.1f, 0, 0, 0), HPCNN_INVALID_STATE, "no layers");
    CHECK_FAILS(hpcnn_model_compile_sgd(m, 5, 0.1f, 0, 0, 0), HPCNN_INVALID_ARGUMENT, "loss must be");
    CHECK_FAILS(hpcnn_model_compile_sgd(m, HPCNN_LOSS_BINARY_CROSS_ENTROPY, 0.1f, 0, 0, 0), HPCNN_INVALID_ARGUMENT, "exactly 1 output");
    CHECK_FAILS(hpcnn_model_from_spec("{\"input\":[1,28,28],\"layers\":[{\"type\":\"relu\",\"cap\":\"x\"}]}", &bad),
                HPCNN_INVALID_ARGUMENT, "layers[0].cap");

    /* datasets */
    hpcnn_dataset* ds = NULL;
    int32_t bad_labels[N] = {0, 1, 2, 0};
    CHECK_FAILS(hpcnn_dataset_create(images, bad_labels, N, 1, 6, 6, 2, &ds), HPCNN_INVALID_ARGUMENT, "label 2 of image 2");
    CHECK_FAILS(hpcnn_dataset_create(images, labels, 0, 1, 6, 6, 2, &ds), HPCNN_INVALID_ARGUMENT, NULL);
    CHECK_OK(hpcnn_dataset_create(images, labels, N, 1, 6, 6, 2, &ds));
    CHECK_FAILS(hpcnn_dataset_get_images(ds, out, 10), HPCNN_INVALID_ARGUMENT, "expected 144 values");
    CHECK_FAILS(hpcnn_dataset_get_labels(ds, classes, 3), HPCNN_INVALID_ARGUMENT, "expected 4 values");
    CHECK_FAILS(hpcnn_dataset_standardize(ds, NULL, 2), HPCNN_INVALID_ARGUMENT, "mode must be");
    hpcnn_dataset *first = NULL, *last = NULL;
    CHECK_FAILS(hpcnn_dataset_split_last(ds, N, &first, &last), HPCNN_INVALID_ARGUMENT, "count must be in [1, 3]");
    int32_t keep[2] = {1, 1};
    CHECK_FAILS(hpcnn_dataset_filter_classes(ds, keep, 2, &first), HPCNN_INVALID_ARGUMENT, "named twice");
    CHECK(first == NULL && last == NULL, "a failed call wrote its output");

    /* fit options */
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_FAILS(hpcnn_fit_options_set_epochs(o, 0), HPCNN_INVALID_ARGUMENT, "epochs must be at least 1");
    CHECK_FAILS(hpcnn_fit_options_set_batch_size(o, -1), HPCNN_INVALID_ARGUMENT, "batch size");
    CHECK_FAILS(hpcnn_fit_options_set_threads(o, 0), HPCNN_INVALID_ARGUMENT, "threads");
    CHECK_FAILS(hpcnn_fit_options_set_validation_split(o, 1.5), HPCNN_INVALID_ARGUMENT, "(0, 1)");
    CHECK_FAILS(hpcnn_fit_options_set_validation_split(o, NAN), HPCNN_INVALID_ARGUMENT, "(0, 1)");
    CHECK_FAILS(hpcnn_fit_options_set_early_stopping(o, 0, 0, 0, 0), HPCNN_INVALID_ARGUMENT, "patience");
    CHECK_FAILS(hpcnn_fit_options_set_validation(o, (hpcnn_dataset*)m), HPCNN_INVALID_ARGUMENT, "not a dataset");

    /* training data that does not fit the model */
    hpcnn_dataset* wide = NULL;
    int32_t many[N] = {0, 4, 1, 0};
    CHECK_OK(hpcnn_dataset_create(images, many, N, 1, 6, 6, 5, &wide));
    CHECK_FAILS(hpcnn_fit(m, wide, o, NULL), HPCNN_INVALID_ARGUMENT, "label 4 of sample 1 is outside the 2 classes");
    hpcnn_dataset* other_shape = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, 1, 4, 9, 2, &other_shape));
    CHECK_FAILS(hpcnn_fit(m, other_shape, o, NULL), HPCNN_INVALID_ARGUMENT, "1x4x9");
    double loss = 0, acc = 0;
    CHECK_FAILS(hpcnn_evaluate(m, other_shape, 0, &loss, &acc), HPCNN_INVALID_ARGUMENT, "1x4x9");

    hpcnn_dataset_release(other_shape);
    hpcnn_dataset_release(wide);
    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(ds);
    hpcnn_model_release(img);
    hpcnn_model_release(m);
}

static void test_wrong_state(void) {
    hpcnn_model* m = NULL;
    hpcnn_dataset* ds = NULL;
    CHECK_OK(hpcnn_model_create(1, 6, 6, 3, &m));
    CHECK_OK(hpcnn_add_flatten(m));
    CHECK_OK(hpcnn_add_dense(m, 2, 1));
    CHECK_OK(hpcnn_dataset_create(images, labels, N, 1, 6, 6, 2, &ds));
    double loss = 0, acc = 0;
    CHECK_FAILS(hpcnn_fit(m, ds, NULL, NULL), HPCNN_INVALID_STATE, "compile");
    CHECK_FAILS(hpcnn_evaluate(m, ds, 0, &loss, &acc), HPCNN_INVALID_STATE, "compile");
    CHECK_FAILS(hpcnn_train_batch(m, images, labels, N, &loss), HPCNN_INVALID_STATE, "compile");
    CHECK_FAILS(hpcnn_model_set_learning_rate(m, 0.1f), HPCNN_INVALID_STATE, "not compiled");
    CHECK_FAILS(hpcnn_model_set_step_schedule(m, 1, 0.5f), HPCNN_INVALID_STATE, "not compiled");
    CHECK_FAILS(hpcnn_model_set_cosine_schedule(m, 3, 0.0f), HPCNN_INVALID_STATE, "not compiled");
    /* an uncompiled model still predicts (raw outputs) */
    float out[N * 2];
    CHECK_OK(hpcnn_predict(m, images, N, out, N * 2));

    /* a diverging loss is a NUMERIC_ERROR */
    CHECK_OK(hpcnn_model_compile_sgd(m, HPCNN_LOSS_MSE, 1e30f, 0, 0, 0));
    float big[PIXELS];
    for (int i = 0; i < PIXELS; i++) big[i] = (float)((i * 7919) % 13) - 6.0f;
    hpcnn_dataset* wild = NULL;
    CHECK_OK(hpcnn_dataset_create(big, labels, N, 1, 6, 6, 2, &wild));
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_OK(hpcnn_fit_options_set_epochs(o, 5));
    CHECK_OK(hpcnn_fit_options_set_batch_size(o, 1));
    int32_t epochs = -1;
    CHECK_FAILS(hpcnn_fit(m, wild, o, &epochs), HPCNN_NUMERIC_ERROR, "lower the learning rate");
    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(wild);
    hpcnn_dataset_release(ds);
    hpcnn_model_release(m);
}

static void test_files(void) {
    char dir[] = "/tmp/hpcnn-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char missing[256], garbage[256], truncated[256], good[256];
    snprintf(missing, sizeof missing, "%s/missing.hpcnn", dir);
    snprintf(garbage, sizeof garbage, "%s/garbage.hpcnn", dir);
    snprintf(truncated, sizeof truncated, "%s/truncated.hpcnn", dir);
    snprintf(good, sizeof good, "%s/good.hpcnn", dir);

    hpcnn_model* m = NULL;
    hpcnn_dataset* ds = NULL;
    CHECK_FAILS(hpcnn_model_load(missing, &m), HPCNN_IO_ERROR, missing);
    CHECK_FAILS(hpcnn_dataset_load_idx(missing, missing, 0, &ds), HPCNN_IO_ERROR, "missing.hpcnn");
    CHECK_FAILS(hpcnn_dataset_load_fashion_mnist("/nonexistent/fashion", 1, &ds), HPCNN_IO_ERROR, "/nonexistent/fashion");

    FILE* f = fopen(garbage, "wb");
    for (int i = 0; i < 100; i++) fputs("garbage!", f);
    fclose(f);
    CHECK_FAILS(hpcnn_model_load(garbage, &m), HPCNN_INVALID_FILE, "not an HpCnn model file");
    CHECK_FAILS(hpcnn_dataset_load_idx(garbage, garbage, 0, &ds), HPCNN_INVALID_FILE, "garbage.hpcnn");
    CHECK(m == NULL && ds == NULL, "a failed load wrote its output");

    hpcnn_model* saved = small_model();
    CHECK_OK(hpcnn_model_save(saved, good));
    char nowhere[300];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir/m.hpcnn", dir);
    CHECK_FAILS(hpcnn_model_save(saved, nowhere), HPCNN_IO_ERROR, NULL);
    hpcnn_model_release(saved);
    f = fopen(good, "rb");
    char buffer[1 << 16];
    size_t size = f ? fread(buffer, 1, sizeof buffer, f) : 0;
    if (f) fclose(f);
    CHECK(size > 64 && size < sizeof buffer, "model file size %zu", size);
    size_t cuts[] = {0, 3, 8, 40, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        f = fopen(truncated, "wb");
        fwrite(buffer, 1, cuts[i], f);
        fclose(f);
        CHECK_FAILS(hpcnn_model_load(truncated, &m), HPCNN_INVALID_FILE, "truncated.hpcnn");
    }
    for (size_t at = 8; at < size; at += size / 7) { /* one flipped byte anywhere is caught */
        buffer[at] ^= 0x20;
        f = fopen(truncated, "wb");
        fwrite(buffer, 1, size, f);
        fclose(f);
        CHECK_FAILS(hpcnn_model_load(truncated, &m), HPCNN_INVALID_FILE, "truncated.hpcnn");
        buffer[at] ^= 0x20;
    }
    CHECK(m == NULL, "a failed load wrote its output");
    unlink(missing);
    unlink(garbage);
    unlink(truncated);
    unlink(good);
    rmdir(dir);
}

static int32_t stop_at_second_batch(void* user, int32_t epoch, int32_t epochs, int32_t batch, int32_t batches, double loss,
                                    double accuracy) {
    (void)epoch, (void)epochs, (void)batches, (void)loss, (void)accuracy;
    ++*(int*)user;
    return batch >= 2;
}

static void test_callback_stop_is_not_an_error(void) {
    hpcnn_model* m = small_model();
    hpcnn_dataset* ds = NULL;
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, 1, 6, 6, 2, &ds));
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_OK(hpcnn_fit_options_set_epochs(o, 3));
    CHECK_OK(hpcnn_fit_options_set_batch_size(o, 1));
    int calls = 0;
    CHECK_OK(hpcnn_fit_options_set_callbacks(o, NULL, stop_at_second_batch, &calls));
    int32_t epochs = -1, trained = -1;
    CHECK_OK(hpcnn_fit(m, ds, o, &epochs));
    CHECK(calls == 2, "the batch callback ran %d times", calls);
    CHECK(epochs == 0, "completed %d epochs", epochs);
    CHECK_OK(hpcnn_model_epochs_trained(m, &trained));
    CHECK(trained == 0, "epochs trained %d", trained);
    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(ds);
    hpcnn_model_release(m);
}

/* The text of the last error after the first '.' or ':' that names the door ("hpcnn_add_relu.cap: ..." and
   "layer.cap: ..." both give "cap: ..."), copied: the next call overwrites the library's buffer. */
static void rule_of_last_error(char* out, size_t size) {
    const char* m = hpcnn_last_error();
    const char* dot = m ? strchr(m, '.') : NULL;
    snprintf(out, size, "%s", dot ? dot + 1 : check_text_(m));
}

/* The old hpcnn_add_* functions and hpcnn_add_layer_json refuse the same values with the same rule (the layer type's),
   and their "not given" sentinels give the spec's defaults. */
static void test_one_rule_per_layer(void) {
    hpcnn_model* img = NULL;
    CHECK_OK(hpcnn_model_create(2, 6, 6, 1, &img));
    char by_c[512], by_json[512];
    hpcnn_status relu_status = hpcnn_add_relu(img, -1.0f);
    rule_of_last_error(by_c, sizeof by_c);
    CHECK_FAILS(hpcnn_add_layer_json(img, "{\"type\":\"relu\",\"cap\":-1}"), HPCNN_INVALID_ARGUMENT, "cap must be positive");
    rule_of_last_error(by_json, sizeof by_json);
    CHECK(relu_status == HPCNN_INVALID_ARGUMENT, "hpcnn_add_relu(-1) returned %d (a negative cap used to mean uncapped)", (int)relu_status);
    CHECK(strcmp(by_c, by_json) == 0, "relu cap: C says \"%s\", JSON says \"%s\"", by_c, by_json);

    CHECK_FAILS(hpcnn_add_batchnorm2d(img, -1e-3f, -1.0f), HPCNN_INVALID_ARGUMENT, "hpcnn_add_batchnorm2d.epsilon: batchnorm2d: epsilon must be positive");
    rule_of_last_error(by_c, sizeof by_c);
    CHECK_FAILS(hpcnn_add_layer_json(img, "{\"type\":\"batchnorm2d\",\"epsilon\":-0.001}"), HPCNN_INVALID_ARGUMENT, "layer.epsilon");
    rule_of_last_error(by_json, sizeof by_json);
    CHECK(strcmp(by_c, by_json) == 0, "batchnorm epsilon: C says \"%s\", JSON says \"%s\"", by_c, by_json);

    CHECK_FAILS(hpcnn_add_batchnorm2d(img, 0, -0.5f), HPCNN_INVALID_ARGUMENT, "momentum must be in [0, 1]");
    rule_of_last_error(by_c, sizeof by_c);
    CHECK_FAILS(hpcnn_add_layer_json(img, "{\"type\":\"batchnorm2d\",\"momentum\":-0.5}"), HPCNN_INVALID_ARGUMENT, "momentum");
    rule_of_last_error(by_json, sizeof by_json);
    CHECK(strcmp(by_c, by_json) == 0, "batchnorm momentum: C says \"%s\", JSON says \"%s\"", by_c, by_json);

    CHECK_FAILS(hpcnn_add_feature_map_norm(img, -1.0f), HPCNN_INVALID_ARGUMENT, "hpcnn_add_feature_map_norm.epsilon");
    CHECK_FAILS(hpcnn_add_leaky_relu(img, 1.0f), HPCNN_INVALID_ARGUMENT, "hpcnn_add_leaky_relu.alpha: leakyrelu: alpha must be in [0, 1)");
    CHECK_FAILS(hpcnn_add_dropout(img, 1.0f, 3), HPCNN_INVALID_ARGUMENT, "hpcnn_add_dropout.rate");
    CHECK_FAILS(hpcnn_add_relu(img, NAN), HPCNN_INVALID_ARGUMENT, "hpcnn_add_relu.cap: expected a finite number");
    int32_t layers = -1;
    CHECK_OK(hpcnn_model_layer_count(img, &layers));
    CHECK(layers == 0, "refused layers were added: %d", layers);

    /* the sentinels: relu 0 is uncapped, +inf too, epsilon 0 and momentum -1 the defaults; a real cap is kept */
    CHECK_OK(hpcnn_add_relu(img, 0));
    CHECK_OK(hpcnn_add_relu(img, INFINITY));
    CHECK_OK(hpcnn_add_relu(img, 6.0f));
    CHECK_OK(hpcnn_add_batchnorm2d(img, 0, -1.0f));
    CHECK_OK(hpcnn_add_feature_map_norm(img, 0));
    CHECK_OK(hpcnn_add_layer_json(img, "{\"type\":\"batchnorm2d\"}"));
    char* spec = NULL;
    CHECK_OK(hpcnn_model_spec(img, &spec));
    /* the engine writes only the fields that differ from the defaults: one cap, no epsilon or momentum */
    const char* cap = spec ? strstr(spec, "\"cap\"") : NULL;
    CHECK(cap && strstr(cap + 1, "\"cap\"") == NULL && strstr(spec, "6") != NULL, "caps in the spec: %s", check_text_(spec));
    CHECK(spec && !strstr(spec, "epsilon") && !strstr(spec, "momentum"), "defaults written out: %s", check_text_(spec));
    hpcnn_free(spec);

    char* types = NULL;
    CHECK_FAILS(hpcnn_layer_types(NULL), HPCNN_INVALID_ARGUMENT, "out_json is NULL");
    CHECK_OK(hpcnn_layer_types(&types));
    CHECK(types && strstr(types, "{\"type\":\"conv2d\",\"aliases\":[\"conv\"],\"fields\":[\"filters\",\"kernel\""), "layer types: %s", check_text_(types));
    CHECK(types && strstr(types, "{\"type\":\"batchnorm2d\",\"aliases\":[\"batchnorm\"],\"fields\":[\"epsilon\",\"momentum\"]}"), "layer types: %s", check_text_(types));
    hpcnn_free(types);
    hpcnn_model_release(img);
}

int main(void) {
    for (int i = 0; i < PIXELS; i++) images[i] = (float)(i % 11) / 10.0f;
    test_library_basics();
    test_null_arguments();
    test_released_and_foreign_handles();
    test_wrong_sizes_and_values();
    test_one_rule_per_layer();
    test_wrong_state();
    test_files();
    test_callback_stop_is_not_an_error();
    /* after all that, the library still works */
    hpcnn_model* m = small_model();
    float out[N * 2];
    CHECK_OK(hpcnn_predict(m, images, N, out, N * 2));
    for (int i = 0; i < N; i++) CHECK(fabsf(out[2 * i] + out[2 * i + 1] - 1.0f) < 1e-5f, "probabilities of image %d", i);
    hpcnn_model_release(m);
    return check_summary("test_errors");
}
