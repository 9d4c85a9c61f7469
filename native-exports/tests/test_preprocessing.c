/*
 * test_preprocessing.c - the preprocessing a model keeps (ABI 8): hpcnn_fit records the statistics
 * hpcnn_dataset_standardize used, the model file carries them and the class names, a program that reloads the model
 * reads them back, and hpcnn_predict_raw_u8 on the raw bytes gives bitwise what hpcnn_predict gives on the images
 * standardised by the library.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

enum { N = 24, VAL = 6, H = 6, W = 6, SIZE = H * W, CLASSES = 3 };

static hpcnn_model* new_model(void) {
    hpcnn_model* m = NULL;
    CHECK_OK(hpcnn_model_create(1, H, W, 11, &m));
    CHECK_OK(hpcnn_add_flatten(m));
    CHECK_OK(hpcnn_add_dense(m, CLASSES, 1));
    CHECK_OK(hpcnn_model_compile_sgd(m, HPCNN_LOSS_CROSS_ENTROPY, 0.05f, 0.9f, 0, 0.0f));
    return m;
}

int main(void) {
    CHECK(hpcnn_abi_version() >= 8, "abi %u", hpcnn_abi_version());
    char dir[] = "/tmp/hpcnn-prep-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char images_path[256], labels_path[256], model_path[256];
    snprintf(images_path, sizeof images_path, "%s/images-idx3-ubyte", dir);
    snprintf(labels_path, sizeof labels_path, "%s/labels-idx1-ubyte", dir);
    snprintf(model_path, sizeof model_path, "%s/model.hpcnn", dir);

    static unsigned char bytes[N * SIZE], labels[N];
    uint32_t seed = 12345;
    for (int i = 0; i < N * SIZE; i++) {
        seed = seed * 1103515245u + 12345u;
        bytes[i] = (unsigned char)(seed >> 16);
    }
    for (int k = 0; k < N; k++) labels[k] = (unsigned char)(k % CLASSES);
    uint32_t image_dims[3] = {N, H, W}, label_dims[1] = {N};
    write_idx(images_path, bytes, image_dims, 3);
    write_idx(labels_path, labels, label_dims, 1);

    hpcnn_dataset *all = NULL, *train = NULL, *val = NULL;
    CHECK_OK(hpcnn_dataset_load_idx(images_path, labels_path, CLASSES, &all));
    CHECK_OK(hpcnn_dataset_split_last(all, VAL, &train, &val));
    CHECK_OK(hpcnn_dataset_standardize(train, val, HPCNN_STANDARDIZE_PER_PIXEL));
    /* Standardising twice would make the recorded statistics wrong. */
    CHECK(hpcnn_dataset_standardize(train, NULL, HPCNN_STANDARDIZE_GLOBAL) == HPCNN_INVALID_STATE, "second standardize");
    CHECK(check_mentions_(hpcnn_last_error(), "standardised already"), "message: %s", hpcnn_last_error());

    /* hpcnn_fit records the statistics; the class names are set by hand (IDX files have none). */
    hpcnn_model* model = new_model();
    int32_t mode = 99;
    int64_t count = -1;
    CHECK_OK(hpcnn_model_standardization_info(model, &mode, &count));
    CHECK(mode == HPCNN_STANDARDIZE_NONE && count == 0, "fresh model: mode %d count %lld", mode, (long long)count);
    hpcnn_fit_options* opts = NULL;
    CHECK_OK(hpcnn_fit_options_create(&opts));
    CHECK_OK(hpcnn_fit_options_set_batch_size(opts, 6));
    int32_t epochs = 0;
    CHECK_OK(hpcnn_fit(model, train, opts, &epochs));
    hpcnn_fit_options_release(opts);
    const char* names[CLASSES] = {"circle", "square", "triangle"};
    CHECK_OK(hpcnn_model_set_class_names(model, names, CLASSES));
    CHECK_OK(hpcnn_model_save(model, model_path));

    /* A fresh program's view: reload, read the statistics back. */
    hpcnn_model* back = NULL;
    CHECK_OK(hpcnn_model_load(model_path, &back));
    CHECK_OK(hpcnn_model_standardization_info(back, &mode, &count));
    CHECK(mode == HPCNN_STANDARDIZE_PER_PIXEL && count == SIZE, "reloaded: mode %d count %lld", mode, (long long)count);
    float mean[SIZE], std[SIZE], mean0[SIZE], std0[SIZE];
    CHECK_OK(hpcnn_model_get_standardization(back, mean, std, SIZE));
    CHECK_OK(hpcnn_model_get_standardization(model, mean0, std0, SIZE));
    CHECK(memcmp(mean, mean0, sizeof mean) == 0 && memcmp(std, std0, sizeof std) == 0, "the file keeps the statistics bit for bit");
    for (int p = 0; p < SIZE; p++) { /* they are the training images' own */
        double s = 0, sq = 0;
        for (int k = 0; k < N - VAL; k++) {
            double v = bytes[k * SIZE + p] / 255.0;
            s += v;
            sq += v * v;
        }
        double mu = s / (N - VAL), sd = sqrt(sq / (N - VAL) - mu * mu);
        CHECK(fabs(mean[p] - mu) < 1e-5 && fabs(std[p] - sd) < 1e-5, "pixel %d: %g %g vs %g %g", p, mean[p], std[p], mu, sd);
    }
    int32_t n_names = 0, scale = -1;
    CHECK_OK(hpcnn_model_class_name_count(back, &n_names));
    CHECK(n_names == CLASSES, "%d class names", n_names);
    for (int k = 0; k < CLASSES; k++) {
        char* name = NULL;
        CHECK_OK(hpcnn_model_class_name(back, k, &name));
        CHECK(name && strcmp(name, names[k]) == 0, "class %d is %s", k, check_text_(name));
        hpcnn_free(name);
    }
    CHECK_OK(hpcnn_model_get_pixel_scale(back, &scale));
    CHECK(scale == HPCNN_PIXELS_0_1, "scale %d", scale);

    /* Raw bytes in, the same probabilities as the library's own standardised images. */
    float standardized[VAL * SIZE], expected[VAL * CLASSES], got[VAL * CLASSES], got_f[VAL * CLASSES];
    CHECK_OK(hpcnn_dataset_get_images(val, standardized, VAL * SIZE));
    CHECK_OK(hpcnn_predict(back, standardized, VAL, expected, VAL * CLASSES));
    CHECK_OK(hpcnn_predict_raw_u8(back, bytes + (N - VAL) * SIZE, VAL, got, VAL * CLASSES));
    CHECK(memcmp(got, expected, sizeof got) == 0, "hpcnn_predict_raw_u8 differs from hpcnn_predict on standardised images");
    float unit[VAL * SIZE];
    for (int i = 0; i < VAL * SIZE; i++) unit[i] = bytes[(N - VAL) * SIZE + i] * (1.0f / 255.0f);
    CHECK_OK(hpcnn_predict_raw(back, unit, VAL, got_f, VAL * CLASSES));
    CHECK(memcmp(got_f, expected, sizeof got_f) == 0, "hpcnn_predict_raw differs from hpcnn_predict on standardised images");
    CHECK_OK(hpcnn_predict(back, unit, VAL, got_f, VAL * CLASSES));
    CHECK(memcmp(got_f, expected, sizeof got_f) != 0, "the raw pixels themselves predict otherwise (the test can fail)");

    /* Errors name the problem. */
    unit[7] = 2.0f;
    CHECK(hpcnn_predict_raw(back, unit, VAL, got_f, VAL * CLASSES) == HPCNN_INVALID_ARGUMENT, "a pixel of 2");
    CHECK(check_mentions_(hpcnn_last_error(), "pixel 7) is outside [0, 1]"), "message: %s", hpcnn_last_error());
    CHECK(hpcnn_model_set_standardization(back, HPCNN_STANDARDIZE_PER_PIXEL, mean, std, 5) == HPCNN_INVALID_ARGUMENT, "count 5");
    CHECK(check_mentions_(hpcnn_last_error(), "expected 36 values"), "message: %s", hpcnn_last_error());
    std[0] = 0.0f;
    CHECK(hpcnn_model_set_standardization(back, HPCNN_STANDARDIZE_PER_PIXEL, mean, std, SIZE) == HPCNN_INVALID_ARGUMENT, "std 0");
    CHECK(hpcnn_model_set_class_names(back, names, CLASSES + 1) == HPCNN_INVALID_ARGUMENT, "4 names for 3 classes");

    /* Set by hand, cleared, copied from a dataset. */
    float gm = 0.5f, gs = 0.25f, m1 = 0, s1 = 0;
    CHECK_OK(hpcnn_model_set_standardization(back, HPCNN_STANDARDIZE_GLOBAL, &gm, &gs, 1));
    CHECK_OK(hpcnn_model_standardization_info(back, &mode, &count));
    CHECK(mode == HPCNN_STANDARDIZE_GLOBAL && count == 1, "global: mode %d count %lld", mode, (long long)count);
    CHECK_OK(hpcnn_model_get_standardization(back, &m1, &s1, 1));
    CHECK(m1 == 0.5f && s1 == 0.25f, "%g %g", m1, s1);
    CHECK_OK(hpcnn_model_set_standardization(back, HPCNN_STANDARDIZE_NONE, NULL, NULL, 0));
    CHECK(hpcnn_model_get_standardization(back, &m1, &s1, 1) == HPCNN_INVALID_STATE, "none to get");
    CHECK_OK(hpcnn_model_set_class_names(back, NULL, 0));
    CHECK_OK(hpcnn_model_class_name_count(back, &n_names));
    CHECK(n_names == 0, "%d names after clearing", n_names);
    char* numbered = NULL;
    CHECK_OK(hpcnn_model_class_name(back, 2, &numbered));
    CHECK(numbered && strcmp(numbered, "2") == 0, "class 2 without names: %s", check_text_(numbered));
    hpcnn_free(numbered);
    CHECK_OK(hpcnn_model_set_preprocessing_from_dataset(back, train));
    CHECK_OK(hpcnn_model_standardization_info(back, &mode, &count));
    CHECK(mode == HPCNN_STANDARDIZE_PER_PIXEL && count == SIZE, "from the dataset: mode %d count %lld", mode, (long long)count);
    CHECK_OK(hpcnn_model_set_pixel_scale(back, HPCNN_PIXELS_0_255));
    CHECK_OK(hpcnn_model_get_pixel_scale(back, &scale));
    CHECK(scale == HPCNN_PIXELS_0_255, "scale %d", scale);
    CHECK(hpcnn_model_set_pixel_scale(back, 7) == HPCNN_INVALID_ARGUMENT, "scale 7");

    hpcnn_model_release(back);
    hpcnn_model_release(model);
    hpcnn_dataset_release(val);
    hpcnn_dataset_release(train);
    hpcnn_dataset_release(all);
    remove(images_path);
    remove(labels_path);
    remove(model_path);
    rmdir(dir);
    return check_summary("test_preprocessing");
}
