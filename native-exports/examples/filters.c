/*
 * filters.c - hand-made convolution filters on a Fashion-MNIST image, as in the fourth tutorial.
 *
 *   filters [image_index] [pgm_dir] [data_dir]
 *
 *   image_index  which test image (default 0, an ankle boot)
 *   pgm_dir      if given, every map is also written there as a PGM picture (image.pgm, blur.pgm, ...)
 *   data_dir     folder of the Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)
 *
 * A convolution layer with three 3x3 filters, no bias, gets hand-made weights through hpcnn_set_param:
 * a box blur (the mean of each 3x3 window), vertical edges (left column minus right column) and a diagonal
 * line detector. hpcnn_forward_layer then gives the feature maps of: the filters with 'same' padding; the
 * same maps after 2x2 max pooling; and the filters applied with stride 2 (no padding). Each map is printed as
 * ASCII shades, darkest ' ' to brightest '@', scaled to its own minimum and maximum.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpcnn.h"

#define TRY(call)                                                                                      \
    do {                                                                                               \
        hpcnn_status status_ = (call);                                                                 \
        if (status_ != HPCNN_OK) {                                                                     \
            fprintf(stderr, "error: %s failed (status %d): %s\n", #call, (int)status_, hpcnn_last_error()); \
            goto cleanup;                                                                              \
        }                                                                                              \
    } while (0)

enum { FILTERS = 3, SIDE = 28 };
static const char* const NAMES[FILTERS] = {"blur", "vertical", "diagonal"};
/* filters x 1 input channel x 3 x 3, the layout of a conv2d weight */
static const float WEIGHTS[FILTERS * 9] = {
    1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, /* box blur */
    1, 0, -1, 1, 0, -1, 1, 0, -1,                                                     /* vertical edges */
    2, -1, -1, -1, 2, -1, -1, -1, 2,                                                  /* diagonal (top left to bottom right) */
};

static void min_max(const float* map, int n, float* lo, float* hi) {
    *lo = *hi = map[0];
    for (int i = 1; i < n; i++) {
        if (map[i] < *lo) *lo = map[i];
        if (map[i] > *hi) *hi = map[i];
    }
}

static void print_map(const char* title, const float* map, int h, int w) {
    static const char shades[] = " .:-=+*#%@";
    float lo, hi;
    min_max(map, h * w, &lo, &hi);
    printf("%s (%dx%d, values %.3f..%.3f)\n", title, h, w, lo, hi);
    for (int y = 0; y < h; y++) {
        putchar('|');
        for (int x = 0; x < w; x++) {
            int s = hi > lo ? (int)((map[y * w + x] - lo) / (hi - lo) * 9.0f + 0.5f) : 0;
            putchar(shades[s]);
            putchar(shades[s]); /* two characters per pixel keep the aspect ratio in a terminal */
        }
        puts("|");
    }
}

/* Writes a map as an 8-bit binary PGM, scaled to its own range. Returns 0 on success. */
static int write_pgm(const char* dir, const char* name, const float* map, int h, int w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.pgm", dir, name);
    FILE* f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "error: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    float lo, hi;
    min_max(map, h * w, &lo, &hi);
    fprintf(f, "P5\n%d %d\n255\n", w, h);
    for (int i = 0; i < h * w; i++) fputc(hi > lo ? (int)((map[i] - lo) / (hi - lo) * 255.0f + 0.5f) : 0, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* A model of one conv2d layer holding the hand-made filters, optionally followed by 2x2 max pooling. */
static hpcnn_status filter_model(int stride, int padding_mode, int pool, hpcnn_model** out) {
    hpcnn_model* m = NULL;
    hpcnn_status s = hpcnn_model_create(1, SIDE, SIDE, 1, &m);
    if (s == HPCNN_OK) s = hpcnn_add_conv2d(m, FILTERS, 3, 3, stride, stride, padding_mode, 0, 0, 0, 0, 0);
    if (s == HPCNN_OK) s = hpcnn_set_param(m, 0, "weight", WEIGHTS, FILTERS * 9);
    if (s == HPCNN_OK && pool) s = hpcnn_add_maxpool2d(m, 2, 2, 0, 0, HPCNN_PADDING_VALID, 0, 0, 0, 0);
    if (s != HPCNN_OK) {
        hpcnn_model_release(m);
        return s;
    }
    *out = m;
    return HPCNN_OK;
}

/* Runs layer `layer` of `model` on the image and prints (and maybe saves) each filter's map.
   Returns 0, or -1 after printing what failed. */
static int show_layer(hpcnn_model* model, int32_t layer, const float* image, const char* label, const char* pgm_dir) {
    int32_t c = 0, h = 0, w = 0;
    if (hpcnn_layer_output_shape(model, layer, &c, &h, &w) != HPCNN_OK) {
        fprintf(stderr, "error: hpcnn_layer_output_shape: %s\n", hpcnn_last_error());
        return -1;
    }
    float* maps = malloc(sizeof(float) * (size_t)(c * h * w));
    if (!maps) return -1;
    int rc = 0;
    if (hpcnn_forward_layer(model, layer, image, 1, maps, (int64_t)c * h * w) != HPCNN_OK) {
        fprintf(stderr, "error: hpcnn_forward_layer: %s\n", hpcnn_last_error());
        rc = -1;
    } else {
        for (int f = 0; f < c && rc == 0; f++) {
            char title[128];
            snprintf(title, sizeof title, "%s, %s", NAMES[f], label);
            print_map(title, maps + (size_t)f * h * w, h, w);
            if (pgm_dir) {
                char name[128];
                snprintf(name, sizeof name, "%s-%s", NAMES[f], label);
                for (char* p = name; *p; p++)
                    if (*p == ' ' || *p == ',') *p = '_';
                rc = write_pgm(pgm_dir, name, maps + (size_t)f * h * w, h, w);
            }
        }
    }
    free(maps);
    return rc;
}

int main(int argc, char** argv) {
    long index = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    const char* pgm_dir = argc > 2 && argv[2][0] ? argv[2] : NULL;
    const char* data_dir = argc > 3 ? argv[3] : NULL;
    int exit_code = 1;
    hpcnn_dataset* test = NULL;
    hpcnn_model *same = NULL, *strided = NULL;
    float* images = NULL;
    int32_t* labels = NULL;

    TRY(hpcnn_dataset_load_fashion_mnist(data_dir, 0, &test));
    int64_t n = 0;
    int32_t c = 0, h = 0, w = 0, classes = 0;
    TRY(hpcnn_dataset_info(test, &n, &c, &h, &w, &classes));
    if (index < 0 || index >= n) {
        fprintf(stderr, "error: image_index must be in [0, %lld)\n", (long long)n);
        goto cleanup;
    }
    images = malloc(sizeof(float) * (size_t)(n * c * h * w));
    labels = malloc(sizeof(int32_t) * (size_t)n);
    if (!images || !labels) {
        fprintf(stderr, "error: out of memory\n");
        goto cleanup;
    }
    TRY(hpcnn_dataset_get_images(test, images, n * c * h * w));
    TRY(hpcnn_dataset_get_labels(test, labels, n));
    const float* image = images + (size_t)index * SIDE * SIDE;

    char title[64];
    snprintf(title, sizeof title, "test image %ld, class %d", index, labels[index]);
    print_map(title, image, SIDE, SIDE);
    if (pgm_dir && write_pgm(pgm_dir, "image", image, SIDE, SIDE) != 0) goto cleanup;

    TRY(filter_model(1, HPCNN_PADDING_SAME, 1, &same));
    TRY(filter_model(2, HPCNN_PADDING_VALID, 0, &strided));
    if (show_layer(same, 0, image, "same padding", pgm_dir) != 0 || show_layer(same, 1, image, "max pooled 2x2", pgm_dir) != 0 ||
        show_layer(strided, 0, image, "stride 2", pgm_dir) != 0)
        goto cleanup;
    exit_code = 0;

cleanup:
    free(images);
    free(labels);
    hpcnn_model_release(same);
    hpcnn_model_release(strided);
    hpcnn_dataset_release(test);
    return exit_code;
}
