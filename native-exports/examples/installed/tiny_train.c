/*
 * tiny_train.c - a program built against an installed HpCnn (./build/install.sh PREFIX), as a user builds one:
 * with CMake (find_package(hpcnn), CMakeLists.txt here) or with pkg-config (pkg-config --cflags --libs hpcnn).
 *
 * Trains a small convolutional network on made-up 8x8 images (class 1: the left half brighter, class 0: the right
 * half), then checks that it tells fresh images apart. Exit 0 when it does (>= 90% right), 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>

#include <hpcnn.h>

#define TRY(call)                                                                                      \
    do {                                                                                               \
        hpcnn_status status_ = (call);                                                                 \
        if (status_ != HPCNN_OK) {                                                                     \
            fprintf(stderr, "error: %s failed (status %d): %s\n", #call, (int)status_, hpcnn_last_error()); \
            goto cleanup;                                                                              \
        }                                                                                              \
    } while (0)

enum { SIDE = 8, PIXELS = SIDE * SIDE, BATCH = 32, STEPS = 60, TEST = 200 };

static uint64_t rng_state = 12345;

/* A uniform float in [0, 1) from a 64-bit LCG (Knuth's MMIX constants): the same images on every machine. */
static float uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(rng_state >> 40) / (float)(1ull << 24);
}

/* n images (n x 1 x 8 x 8) with noise in [0, 1) and 0.25 added to one half; labels[i] says which half. */
static void make_images(float* images, int32_t* labels, int n) {
    for (int i = 0; i < n; i++) {
        labels[i] = uniform() < 0.5f;
        for (int p = 0; p < PIXELS; p++) {
            int left = p % SIDE < SIDE / 2;
            images[i * PIXELS + p] = uniform() + (left == labels[i] ? 0.25f : 0.0f);
        }
    }
}

int main(void) {
    static float images[TEST * PIXELS];
    static int32_t labels[TEST], predicted[TEST];
    hpcnn_model* model = NULL;
    int rc = 1;
    double first_loss = 0, loss = 0;

    printf("hpcnn %s (ABI %u), GEMM kernel %s\n", hpcnn_version(), hpcnn_abi_version(), hpcnn_gemm_kernel());
    if (hpcnn_abi_version() < HPCNN_ABI_VERSION) {
        fprintf(stderr, "error: the library has ABI %u, this program was built for %d\n", hpcnn_abi_version(), HPCNN_ABI_VERSION);
        return 1;
    }
    TRY(hpcnn_model_create(1, SIDE, SIDE, 42, &model));
    TRY(hpcnn_add_conv2d(model, 4, 3, 3, 1, 1, HPCNN_PADDING_SAME, 0, 0, 0, 0, 1));
    TRY(hpcnn_add_relu(model, 0));
    TRY(hpcnn_add_flatten(model));
    TRY(hpcnn_add_dense(model, 2, 1));
    TRY(hpcnn_model_compile_sgd(model, HPCNN_LOSS_CROSS_ENTROPY, 0.05f, 0.9f, 0, 0));
    for (int step = 0; step < STEPS; step++) {
        make_images(images, labels, BATCH);
        TRY(hpcnn_train_batch(model, images, labels, BATCH, &loss));
        if (step == 0) first_loss = loss;
    }
    make_images(images, labels, TEST);
    TRY(hpcnn_predict_classes(model, images, TEST, predicted));
    int right = 0;
    for (int i = 0; i < TEST; i++) right += predicted[i] == labels[i];
    printf("loss %.4f -> %.4f after %d steps; %d of %d fresh images right\n", first_loss, loss, STEPS, right, TEST);
    rc = right * 10 >= TEST * 9 ? 0 : 1;
    if (rc) fprintf(stderr, "error: expected at least 90%% right\n");
cleanup:
    hpcnn_model_release(model);
    return rc;
}
