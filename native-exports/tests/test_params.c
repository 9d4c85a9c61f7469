/*
 * test_params.c - layers and parameters (info, get/set round trip, freezing), spec round trip, save/load,
 * datasets, and a short training run through the C API.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define N 24
#define C 2
#define H 9
#define W 7
#define PIXELS (N * C * H * W)

static float images[PIXELS];
static int32_t labels[N];

/* conv2d(5, 3x2, stride (2,1), explicit padding 1,0,1,0) - relu - maxpool 2 - flatten - dense(3) */
static hpcnn_model* build(uint64_t seed) {
    hpcnn_model* m = NULL;
    CHECK_OK(hpcnn_model_create(C, H, W, seed, &m));
    CHECK_OK(hpcnn_add_conv2d(m, 5, 3, 2, 2, 1, HPCNN_PADDING_EXPLICIT, 1, 0, 1, 0, 1));
    CHECK_OK(hpcnn_add_relu(m, 0));
    CHECK_OK(hpcnn_add_layer_json(m, "{\"type\": \"maxpool2d\", \"kernel\": 2}"));
    CHECK_OK(hpcnn_add_flatten(m));
    CHECK_OK(hpcnn_add_dense(m, 3, 1));
    CHECK_OK(hpcnn_model_compile_sgd(m, HPCNN_LOSS_CROSS_ENTROPY, 0.05f, 0.9f, 0, 0.0f));
    return m;
}

static int same_floats(const float* a, const float* b, int64_t n) { return memcmp(a, b, sizeof(float) * (size_t)n) == 0; }

static void predict(hpcnn_model* m, float* out) { CHECK_OK(hpcnn_predict(m, images, N, out, N * 3)); }

static void test_layers_and_params(void) {
    hpcnn_model* m = build(11);
    int32_t count = 0, c, h, w;
    CHECK_OK(hpcnn_model_layer_count(m, &count));
    CHECK(count == 5, "layer count %d", count);
    const char* expected_kinds[] = {"conv2d", "relu", "maxpool2d", "flatten", "dense"};
    const int32_t expected_shapes[][3] = {{5, 5, 6}, {5, 5, 6}, {5, 2, 3}, {30, 1, 1}, {3, 1, 1}};
    for (int i = 0; i < 5; i++) {
        const char* kind = NULL;
        CHECK_OK(hpcnn_layer_kind(m, i, &kind));
        CHECK(kind && strcmp(kind, expected_kinds[i]) == 0, "layer %d kind %s", i, kind);
        CHECK_OK(hpcnn_layer_output_shape(m, i, &c, &h, &w));
        CHECK(c == expected_shapes[i][0] && h == expected_shapes[i][1] && w == expected_shapes[i][2], "layer %d shape %dx%dx%d", i,
              c, h, w);
    }
    CHECK_OK(hpcnn_model_input_shape(m, &c, &h, &w));
    CHECK(c == C && h == H && w == W, "input %dx%dx%d", c, h, w);
    CHECK_OK(hpcnn_model_output_size(m, &count));
    CHECK(count == 3, "outputs %d", count);
    int64_t params = 0;
    CHECK_OK(hpcnn_model_parameter_count(m, &params));
    CHECK(params == 5 * 2 * 3 * 2 + 5 + 3 * 30 + 3, "parameters %lld", (long long)params);

    /* parameter info: conv weight filters x in_channels x kh x kw, dense weight units x in_features */
    const char* name = NULL;
    int32_t rank = 0, dims[8];
    int64_t n = 0;
    CHECK_OK(hpcnn_layer_param_count(m, 0, &count));
    CHECK(count == 2, "conv params %d", count);
    CHECK_OK(hpcnn_layer_param_info(m, 0, 0, &name, &rank, dims, &n));
    CHECK(strcmp(name, "weight") == 0 && rank == 4 && dims[0] == 5 && dims[1] == 2 && dims[2] == 3 && dims[3] == 2 && n == 60,
          "conv weight %s rank %d [%d %d %d %d] %lld", name, rank, dims[0], dims[1], dims[2], dims[3], (long long)n);
    CHECK_OK(hpcnn_layer_param_info(m, 0, 1, &name, &rank, dims, &n));
    CHECK(strcmp(name, "bias") == 0 && rank == 1 && dims[0] == 5 && n == 5, "conv bias %s", name);
    CHECK_OK(hpcnn_layer_param_info(m, 4, 0, &name, &rank, dims, &n));
    CHECK(strcmp(name, "weight") == 0 && rank == 2 && dims[0] == 3 && dims[1] == 30 && n == 90, "dense weight %s", name);
    CHECK_OK(hpcnn_layer_param_count(m, 1, &count));
    CHECK(count == 0, "relu params %d", count);

    /* get/set round trip, and the values are what the layer computes with */
    float weight[60], back[60], bias[5];
    for (int i = 0; i < 60; i++) weight[i] = (float)((i * 37) % 17 - 8) / 8.0f;
    for (int i = 0; i < 5; i++) bias[i] = 0.25f * (float)i - 0.5f;
    CHECK_OK(hpcnn_set_param(m, 0, "weight", weight, 60));
    CHECK_OK(hpcnn_set_param(m, 0, "bias", bias, 5));
    CHECK_OK(hpcnn_get_param(m, 0, "weight", back, 60));
    CHECK(same_floats(weight, back, 60), "weight round trip");
    float maps[5 * 5 * 6];
    CHECK_OK(hpcnn_forward_layer(m, 0, images, 1, maps, 5 * 5 * 6));
    int bad = 0;
    for (int f = 0; f < 5; f++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 6; x++) {
                double sum = bias[f];
                for (int ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 2; kx++) {
                            int iy = y * 2 - 1 + ky, ix = x + kx; /* stride (2, 1), padding top 1 */
                            if (iy < 0 || iy >= H) continue;
                            sum += (double)weight[((f * C + ch) * 3 + ky) * 2 + kx] * images[(ch * H + iy) * W + ix];
                        }
                bad += fabs(sum - maps[(f * 5 + y) * 6 + x]) > 1e-4;
            }
    CHECK(bad == 0, "%d conv outputs differ from the direct sum", bad);

    /* freezing: a frozen layer does not change in training, the others do */
    float dense0[90], dense1[90], conv1[60];
    int32_t frozen = -1;
    CHECK_OK(hpcnn_set_frozen(m, 0, 1));
    CHECK_OK(hpcnn_is_frozen(m, 0, &frozen));
    CHECK(frozen == 1, "frozen %d", frozen);
    CHECK_OK(hpcnn_get_param(m, 4, "weight", dense0, 90));
    double loss = 0;
    CHECK_OK(hpcnn_train_batch(m, images, labels, N, &loss));
    CHECK(isfinite(loss) && loss > 0, "loss %f", loss);
    CHECK_OK(hpcnn_get_param(m, 0, "weight", conv1, 60));
    CHECK_OK(hpcnn_get_param(m, 4, "weight", dense1, 90));
    CHECK(same_floats(conv1, weight, 60), "a frozen conv layer changed");
    CHECK(!same_floats(dense1, dense0, 90), "the dense layer did not train");
    CHECK_OK(hpcnn_set_frozen(m, 0, 0));
    CHECK_OK(hpcnn_is_frozen(m, 0, &frozen));
    CHECK(frozen == 0, "unfrozen %d", frozen);
    CHECK_OK(hpcnn_train_batch(m, images, labels, N, &loss));
    CHECK_OK(hpcnn_get_param(m, 0, "weight", conv1, 60));
    CHECK(!same_floats(conv1, weight, 60), "the unfrozen conv layer did not train");
    hpcnn_model_release(m);
}

static void test_spec_round_trip(void) {
    hpcnn_model* m = build(99);
    CHECK_OK(hpcnn_model_set_step_schedule(m, 2, 0.5f));
    CHECK_OK(hpcnn_set_frozen(m, 4, 1));
    char* spec = NULL;
    CHECK_OK(hpcnn_model_spec(m, &spec));
    CHECK(spec && strstr(spec, "\"seed\": 99") && strstr(spec, "\"conv2d\"") && strstr(spec, "\"frozen\": true") &&
              strstr(spec, "\"momentum\": 0.9") && strstr(spec, "\"step\""),
          "spec: %s", spec);
    hpcnn_model* again = NULL;
    CHECK_OK(hpcnn_model_from_spec(spec, &again));
    char* spec2 = NULL;
    CHECK_OK(hpcnn_model_spec(again, &spec2));
    CHECK(spec && spec2 && strcmp(spec, spec2) == 0, "the spec changed:\n%s\n---\n%s", spec, spec2);
    /* the same seed gives the same initial weights */
    float a[N * 3], b[N * 3];
    predict(m, a);
    predict(again, b);
    CHECK(same_floats(a, b, N * 3), "a model from the spec predicts differently");
    int32_t frozen = 0;
    CHECK_OK(hpcnn_is_frozen(again, 4, &frozen));
    CHECK(frozen == 1, "frozen flag lost");
    char* summary = NULL;
    CHECK_OK(hpcnn_model_summary(again, &summary));
    CHECK(summary && strstr(summary, "dense*") && strstr(summary, "maxpool2d"), "summary: %s", summary);
    hpcnn_free(summary);
    hpcnn_free(spec);
    hpcnn_free(spec2);
    hpcnn_model_release(again);
    hpcnn_model_release(m);
}

static void test_save_load_and_resume(void) {
    char dir[] = "/tmp/hpcnn-params-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[128];
    snprintf(path, sizeof path, "%s/m.hpcnn", dir);

    hpcnn_model* m = build(5);
    hpcnn_dataset* ds = NULL;
    hpcnn_fit_options* o = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, C, H, W, 3, &ds));
    CHECK_OK(hpcnn_fit_options_create(&o));
    CHECK_OK(hpcnn_fit_options_set_epochs(o, 2));
    CHECK_OK(hpcnn_fit_options_set_batch_size(o, 5));
    CHECK_OK(hpcnn_fit_options_set_seed(o, 17));
    int32_t epochs = 0;
    CHECK_OK(hpcnn_fit(m, ds, o, &epochs));
    CHECK(epochs == 2, "epochs %d", epochs);
    CHECK_OK(hpcnn_model_save(m, path));

    hpcnn_model* loaded = NULL;
    CHECK_OK(hpcnn_model_load(path, &loaded));
    float a[N * 3], b[N * 3];
    predict(m, a);
    predict(loaded, b);
    CHECK(same_floats(a, b, N * 3), "the loaded model predicts differently");
    int32_t ca[N], cb[N];
    CHECK_OK(hpcnn_predict_classes(m, images, N, ca));
    CHECK_OK(hpcnn_predict_classes(loaded, images, N, cb));
    CHECK(memcmp(ca, cb, sizeof ca) == 0, "classes differ");
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (a[i * 3 + k] > a[i * 3 + best]) best = k;
        CHECK(ca[i] == best, "image %d: class %d, argmax %d", i, ca[i], best);
    }
    int32_t trained = 0;
    CHECK_OK(hpcnn_model_epochs_trained(loaded, &trained));
    CHECK(trained == 2, "epochs trained %d", trained);
    double l1, acc1, l2, acc2;
    CHECK_OK(hpcnn_evaluate(m, ds, 0, &l1, &acc1));
    CHECK_OK(hpcnn_evaluate(loaded, ds, 7, &l2, &acc2));
    CHECK(fabs(l1 - l2) < 1e-6 && acc1 == acc2, "evaluate %f %f vs %f %f", l1, acc1, l2, acc2);

    /* momentum and epochs trained come back too: one more epoch on each gives the same weights */
    CHECK_OK(hpcnn_fit_options_set_epochs(o, 1));
    CHECK_OK(hpcnn_fit(m, ds, o, NULL));
    CHECK_OK(hpcnn_fit(loaded, ds, o, NULL));
    predict(m, a);
    predict(loaded, b);
    CHECK(same_floats(a, b, N * 3), "training resumed from the file differs");

    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(ds);
    hpcnn_model_release(loaded);
    hpcnn_model_release(m);
    unlink(path);
    rmdir(dir);
}

static void test_datasets(void) {
    hpcnn_dataset *ds = NULL, *first = NULL, *last = NULL, *two = NULL;
    CHECK_OK(hpcnn_dataset_create(images, labels, N, C, H, W, 3, &ds));
    float back[PIXELS];
    int32_t lab[N];
    CHECK_OK(hpcnn_dataset_get_images(ds, back, PIXELS));
    CHECK_OK(hpcnn_dataset_get_labels(ds, lab, N));
    CHECK(same_floats(images, back, PIXELS) && memcmp(labels, lab, sizeof lab) == 0, "dataset copy differs");
    CHECK_OK(hpcnn_dataset_split_last(ds, 4, &first, &last));
    int64_t n = 0;
    int32_t c, h, w, k;
    CHECK_OK(hpcnn_dataset_info(last, &n, &c, &h, &w, &k));
    CHECK(n == 4 && k == 3, "last %lld", (long long)n);
    CHECK_OK(hpcnn_dataset_get_labels(last, lab, 4));
    CHECK(memcmp(lab, labels + N - 4, 4 * sizeof(int32_t)) == 0, "split_last took other images");
    int32_t keep[2] = {2, 0};
    CHECK_OK(hpcnn_dataset_filter_classes(ds, keep, 2, &two));
    CHECK_OK(hpcnn_dataset_info(two, &n, &c, &h, &w, &k));
    int64_t expected = 0;
    for (int i = 0; i < N; i++) expected += labels[i] != 1;
    CHECK(n == expected && k == 2, "filtered %lld of %lld, %d classes", (long long)n, (long long)expected, k);
    CHECK_OK(hpcnn_dataset_get_labels(two, lab, n));
    for (int i = 0, j = 0; i < N; i++)
        if (labels[i] != 1) {
            CHECK(lab[j] == (labels[i] == 2 ? 0 : 1), "relabelled %d -> %d", labels[i], lab[j]);
            j++;
        }
    /* standardisation with the training statistics */
    CHECK_OK(hpcnn_dataset_standardize(first, last, HPCNN_STANDARDIZE_GLOBAL));
    CHECK_OK(hpcnn_dataset_get_images(first, back, (N - 4) * C * H * W));
    double sum = 0, sq = 0;
    for (int i = 0; i < (N - 4) * C * H * W; i++) sum += back[i], sq += (double)back[i] * back[i];
    double mean = sum / ((N - 4) * C * H * W), var = sq / ((N - 4) * C * H * W) - mean * mean;
    CHECK(fabs(mean) < 1e-4 && fabs(var - 1) < 1e-3, "standardised mean %f var %f", mean, var);
    hpcnn_dataset_release(two);
    hpcnn_dataset_release(first);
    hpcnn_dataset_release(last);
    hpcnn_dataset_release(ds);
}

int main(void) {
    for (int i = 0; i < PIXELS; i++) images[i] = (float)((i * 7919) % 101) / 100.0f;
    for (int i = 0; i < N; i++) labels[i] = (i * 5) % 3;
    test_layers_and_params();
    test_spec_round_trip();
    test_save_load_and_resume();
    test_datasets();
    return check_summary("test_params");
}
