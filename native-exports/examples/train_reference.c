/*
 * train_reference.c - trains HpCnn's reference network on Fashion-MNIST through the C API.
 *
 *   train_reference [epochs] [model_path] [data_dir]
 *
 *   epochs      epochs to train (default 1)
 *   model_path  where the trained model is saved (default train_reference.hpcnn)
 *   data_dir    folder of the Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)
 *
 * Steps: load the data, standardise both sets with the training statistics, build
 *   Conv(1->32, 3x3, pad 1)-ReLU-MaxPool(2) -> Conv(32->64, 3x3, pad 1)-ReLU-MaxPool(2) -> Flatten
 *   -> Dense(128)-ReLU -> Dense(10), softmax cross-entropy, SGD lr 0.01 momentum 0.9, batch 64,
 * train with a callback printing each epoch's metrics, evaluate on the test set, save, load the file again and
 * check that the loaded model predicts the same classes (and probabilities). Any failure prints
 * hpcnn_last_error() and exits with status 1; a test accuracy below 0.80 (PyTorch reaches 0.87 after one epoch
 * of the same recipe) exits with status 2.
 *
 * The same program trains over several processes: mpirun -np 2 train_reference 1 (Open MPI 4). Every process loads
 * the data and builds the model, hpcnn_fit splits each batch over them, and all end with the weights one process
 * would have; rank 0 alone prints and saves, and every process ends MPI with hpcnn_distributed_finalize.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpcnn.h"

/* Runs an hpcnn call; on failure prints what failed and the library's message, and jumps to cleanup. */
#define TRY(call)                                                                                      \
    do {                                                                                               \
        hpcnn_status status_ = (call);                                                                 \
        if (status_ != HPCNN_OK) {                                                                     \
            fprintf(stderr, "error: %s failed (status %d): %s\n", #call, (int)status_, hpcnn_last_error()); \
            goto cleanup;                                                                              \
        }                                                                                              \
    } while (0)

/* Callbacks run in every process of a distributed fit with the same figures: rank 0 prints them. */
static int32_t on_epoch(void* user, int32_t epoch, int32_t epochs, double loss, double accuracy, double val_loss,
                        double val_accuracy, double seconds, double samples_per_second) {
    (void)user;
    if (hpcnn_distributed_rank() != 0) return 0;
    printf("epoch %d/%d: loss %.4f, accuracy %.4f", epoch, epochs, loss, accuracy);
    if (!isnan(val_loss)) printf(", val_loss %.4f, val_accuracy %.4f", val_loss, val_accuracy);
    printf(" (%.1f s, %.0f samples/s)\n", seconds, samples_per_second);
    return 0; /* non-zero would stop training */
}

static int32_t on_batch(void* user, int32_t epoch, int32_t epochs, int32_t batch, int32_t batches, double loss,
                        double accuracy) {
    (void)user;
    if (hpcnn_distributed_rank() == 0 && (batch % 100 == 0 || batch == batches)) {
        fprintf(stderr, "  epoch %d/%d batch %d/%d: running loss %.4f, accuracy %.4f\n", epoch, epochs, batch, batches,
                loss, accuracy);
    }
    return 0;
}

int main(int argc, char** argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 1;
    const char* model_path = argc > 2 ? argv[2] : "train_reference.hpcnn";
    const char* data_dir = argc > 3 ? argv[3] : NULL;
    int exit_code = 1;
    hpcnn_dataset *train = NULL, *test = NULL;
    hpcnn_model *model = NULL, *loaded = NULL;
    hpcnn_fit_options* options = NULL;
    char* summary = NULL;
    float *images = NULL, *probs = NULL, *probs_loaded = NULL;
    int32_t *classes = NULL, *classes_loaded = NULL;

    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout in step with the progress lines on stderr */
    if (epochs < 1) {
        fprintf(stderr, "usage: %s [epochs >= 1] [model_path] [data_dir]\n", argv[0]);
        return 1;
    }
    if (hpcnn_abi_version() < HPCNN_ABI_VERSION) {
        fprintf(stderr, "error: libhpcnn ABI %u is older than this program's %d\n", hpcnn_abi_version(), HPCNN_ABI_VERSION);
        return 1;
    }
    int rank = hpcnn_distributed_rank(), size = hpcnn_distributed_size();
    if (rank == 0)
        printf("libhpcnn %s, kernels %s, %d threads, %d process(es)\n", hpcnn_version(), hpcnn_kernel_path(),
               hpcnn_get_threads(), size);

    /* data: pixels in [0, 1], standardised with the training set's mean and std */
    TRY(hpcnn_dataset_load_fashion_mnist(data_dir, 1, &train));
    TRY(hpcnn_dataset_load_fashion_mnist(data_dir, 0, &test));
    TRY(hpcnn_dataset_standardize(train, test, HPCNN_STANDARDIZE_GLOBAL));

    /* the reference network */
    TRY(hpcnn_model_create(1, 28, 28, 42, &model));
    TRY(hpcnn_add_conv2d(model, 32, 3, 3, 1, 1, HPCNN_PADDING_EXPLICIT, 1, 1, 1, 1, 1));
    TRY(hpcnn_add_relu(model, 0));
    TRY(hpcnn_add_maxpool2d(model, 2, 2, 0, 0, HPCNN_PADDING_VALID, 0, 0, 0, 0));
    TRY(hpcnn_add_conv2d(model, 64, 3, 3, 1, 1, HPCNN_PADDING_EXPLICIT, 1, 1, 1, 1, 1));
    TRY(hpcnn_add_relu(model, 0));
    TRY(hpcnn_add_maxpool2d(model, 2, 2, 0, 0, HPCNN_PADDING_VALID, 0, 0, 0, 0));
    TRY(hpcnn_add_flatten(model));
    TRY(hpcnn_add_dense(model, 128, 1));
    TRY(hpcnn_add_relu(model, 0));
    TRY(hpcnn_add_dense(model, 10, 1));
    TRY(hpcnn_model_compile_sgd(model, HPCNN_LOSS_CROSS_ENTROPY, 0.01f, 0.9f, 0, 0.0f));
    TRY(hpcnn_model_summary(model, &summary));
    if (rank == 0) fputs(summary, stdout);

    /* training */
    TRY(hpcnn_fit_options_create(&options));
    TRY(hpcnn_fit_options_set_epochs(options, epochs));
    TRY(hpcnn_fit_options_set_batch_size(options, 64));
    TRY(hpcnn_fit_options_set_validation(options, test));
    TRY(hpcnn_fit_options_set_callbacks(options, on_epoch, on_batch, NULL));
    int32_t completed = 0;
    TRY(hpcnn_fit(model, train, options, &completed));
    if (completed != epochs) {
        fprintf(stderr, "error: trained %d epochs, asked for %d\n", completed, epochs);
        goto cleanup;
    }

    double loss = 0, accuracy = 0;
    TRY(hpcnn_evaluate(model, test, 256, &loss, &accuracy));
    if (rank != 0) { /* the others hold the same weights: rank 0 saves and checks them */
        exit_code = 0;
        goto cleanup;
    }
    printf("test: loss %.4f, accuracy %.4f\n", loss, accuracy);

    /* save, load, and check the loaded model predicts what the trained one does */
    TRY(hpcnn_model_save(model, model_path));
    TRY(hpcnn_model_load(model_path, &loaded));
    int64_t n = 0;
    int32_t c = 0, h = 0, w = 0, k = 0, outputs = 0;
    TRY(hpcnn_dataset_info(test, &n, &c, &h, &w, &k));
    TRY(hpcnn_model_output_size(loaded, &outputs));
    int64_t pixels = n * c * h * w;
    images = malloc(sizeof(float) * (size_t)pixels);
    probs = malloc(sizeof(float) * (size_t)(n * outputs));
    probs_loaded = malloc(sizeof(float) * (size_t)(n * outputs));
    classes = malloc(sizeof(int32_t) * (size_t)n);
    classes_loaded = malloc(sizeof(int32_t) * (size_t)n);
    if (!images || !probs || !probs_loaded || !classes || !classes_loaded) {
        fprintf(stderr, "error: out of memory\n");
        goto cleanup;
    }
    TRY(hpcnn_dataset_get_images(test, images, pixels));
    TRY(hpcnn_predict_classes(model, images, n, classes));
    TRY(hpcnn_predict_classes(loaded, images, n, classes_loaded));
    TRY(hpcnn_predict(model, images, n, probs, n * outputs));
    TRY(hpcnn_predict(loaded, images, n, probs_loaded, n * outputs));
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += classes[i] != classes_loaded[i];
    if (differ != 0 || memcmp(probs, probs_loaded, sizeof(float) * (size_t)(n * outputs)) != 0) {
        fprintf(stderr, "error: the reloaded model differs: %lld of %lld classes differ\n", (long long)differ, (long long)n);
        goto cleanup;
    }
    int32_t epochs_trained = 0;
    TRY(hpcnn_model_epochs_trained(loaded, &epochs_trained));
    printf("saved %s and loaded it again: %lld predictions identical, %d epoch(s) trained\n", model_path, (long long)n,
           epochs_trained);
    if (epochs_trained != epochs) {
        fprintf(stderr, "error: the loaded model says %d epochs trained, expected %d\n", epochs_trained, epochs);
        goto cleanup;
    }
    exit_code = accuracy >= 0.80 ? 0 : 2;
    if (exit_code != 0) fprintf(stderr, "error: test accuracy %.4f is below 0.80\n", accuracy);

cleanup:
    free(images);
    free(probs);
    free(probs_loaded);
    free(classes);
    free(classes_loaded);
    hpcnn_free(summary);
    hpcnn_fit_options_release(options);
    hpcnn_model_release(loaded);
    hpcnn_model_release(model);
    hpcnn_dataset_release(test);
    hpcnn_dataset_release(train);
    /* Open MPI counts a process that exits without finalizing as failed (nothing happens when MPI was not started). */
    if (hpcnn_distributed_finalize() != HPCNN_OK) fprintf(stderr, "error: %s\n", hpcnn_last_error());
    return exit_code;
}
