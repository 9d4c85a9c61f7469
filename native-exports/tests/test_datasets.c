/*
 * test_datasets.c - the dataset loaders of ABI 6 on files this test writes in the exact formats: CIFAR-10 binary
 * batches (1 label byte + 3,072 pixel bytes per record) with batches.meta.txt, MNIST IDX files; class names; errors
 * that name the file.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static unsigned char pixel(int image, int i) { return (unsigned char)((image * 13 + i * 7) % 256); }

/* A CIFAR-10 batch of n records; labels[k] then 3,072 pixel bytes. drop cuts bytes off the end. */
static void write_cifar(const char* path, const unsigned char* labels, int n, int first_image, int drop) {
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    size_t total = (size_t)n * 3073 - (size_t)drop, written = 0;
    for (int k = 0; k < n; k++)
        for (int i = -1; i < 3072 && written < total; i++, written++)
            fputc(i < 0 ? labels[k] : pixel(first_image + k, i), f);
    fclose(f);
}

int main(void) {
    CHECK(hpcnn_abi_version() >= 6, "abi %u", hpcnn_abi_version());
    char dir[] = "/tmp/hpcnn-datasets-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];

    /* CIFAR-10: five training batches of 2 records, a test batch of 3, a meta file. */
    for (int b = 1; b <= 5; b++) {
        unsigned char labels[2] = {(unsigned char)b, (unsigned char)(9 - b)};
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, b);
        write_cifar(path, labels, 2, 2 * (b - 1), 0);
    }
    unsigned char test_labels[3] = {4, 0, 9};
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    write_cifar(path, test_labels, 3, 100, 0);
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    FILE* meta = fopen(path, "w");
    if (meta) {
        fputs("plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n", meta);
        fclose(meta);
    }

    hpcnn_dataset* train = NULL;
    CHECK_OK(hpcnn_dataset_load_cifar10(dir, 1, &train));
    int64_t n = 0;
    int32_t c = 0, h = 0, w = 0, classes = 0;
    CHECK_OK(hpcnn_dataset_info(train, &n, &c, &h, &w, &classes));
    CHECK(n == 10 && c == 3 && h == 32 && w == 32 && classes == 10, "info %lld %d %d %d %d", (long long)n, c, h, w, classes);
    int32_t labels[10];
    CHECK_OK(hpcnn_dataset_get_labels(train, labels, 10));
    for (int k = 0; k < 10; k++) {
        int b = k / 2 + 1;
        CHECK(labels[k] == (k % 2 == 0 ? b : 9 - b), "label %d is %d", k, labels[k]);
    }
    float* images = malloc(sizeof(float) * 10 * 3072);
    CHECK_OK(hpcnn_dataset_get_images(train, images, 10 * 3072));
    int bad_pixels = 0;
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < 3072; i++)
            if (images[k * 3072 + i] < pixel(k, i) / 255.0f - 1e-6f || images[k * 3072 + i] > pixel(k, i) / 255.0f + 1e-6f) bad_pixels++;
    CHECK(bad_pixels == 0, "%d pixels differ from the file's bytes / 255", bad_pixels);
    free(images);
    char* name = NULL;
    CHECK_OK(hpcnn_dataset_class_name(train, 1, &name));
    CHECK(name != NULL && strcmp(name, "car") == 0, "class 1 is %s (batches.meta.txt says car)", name ? name : "NULL");
    hpcnn_free(name);
    CHECK_FAILS(hpcnn_dataset_class_name(train, 10, &name), HPCNN_INVALID_ARGUMENT, "class 10");
    hpcnn_dataset_release(train);

    hpcnn_dataset* test = NULL;
    CHECK_OK(hpcnn_dataset_load_cifar10(dir, 0, &test));
    CHECK_OK(hpcnn_dataset_info(test, &n, &c, &h, &w, &classes));
    CHECK(n == 3, "test count %lld", (long long)n);
    hpcnn_dataset_release(test);

    /* A truncated batch, a label of 10, a missing folder. */
    snprintf(path, sizeof path, "%s/data_batch_4.bin", dir);
    unsigned char two[2] = {1, 2};
    write_cifar(path, two, 2, 0, 5);
    CHECK_FAILS(hpcnn_dataset_load_cifar10(dir, 1, &train), HPCNN_INVALID_FILE, "data_batch_4.bin");
    unsigned char ten[2] = {1, 10};
    write_cifar(path, ten, 2, 0, 0);
    CHECK_FAILS(hpcnn_dataset_load_cifar10(dir, 1, &train), HPCNN_INVALID_FILE, "label 10");
    CHECK_FAILS(hpcnn_dataset_load_cifar10("/nonexistent/cifar", 1, &train), HPCNN_IO_ERROR, "cifar");
    CHECK_FAILS(hpcnn_dataset_load_cifar10(NULL, 1, &train), HPCNN_INVALID_ARGUMENT, "directory");

    /* MNIST: IDX files with the standard names. */
    static unsigned char digits[4 * 28 * 28];
    for (int i = 0; i < 4 * 784; i++) digits[i] = (unsigned char)(i % 251);
    unsigned char digit_labels[4] = {7, 1, 0, 9};
    uint32_t idims[3] = {4, 28, 28}, ldims[1] = {4};
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    write_idx(path, digits, idims, 3);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
    write_idx(path, digit_labels, ldims, 1);
    hpcnn_dataset* mnist = NULL;
    CHECK_OK(hpcnn_dataset_load_mnist(dir, 0, &mnist));
    CHECK_OK(hpcnn_dataset_info(mnist, &n, &c, &h, &w, &classes));
    CHECK(n == 4 && c == 1 && h == 28 && w == 28 && classes == 10, "mnist info");
    CHECK_OK(hpcnn_dataset_get_labels(mnist, labels, 4));
    CHECK(labels[0] == 7 && labels[3] == 9, "mnist labels %d %d", labels[0], labels[3]);
    CHECK_OK(hpcnn_dataset_class_name(mnist, 7, &name));
    CHECK(name != NULL && strcmp(name, "7") == 0, "mnist class 7 is %s", name ? name : "NULL");
    hpcnn_free(name);
    hpcnn_dataset_release(mnist);
    CHECK_FAILS(hpcnn_dataset_load_mnist(dir, 1, &mnist), HPCNN_IO_ERROR, "train-images-idx3-ubyte");

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    return check_summary("test_datasets");
}
