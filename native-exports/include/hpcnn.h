/*
 * hpcnn.h - the C interface of libhpcnn, HpCnn's CPU engine for small convolutional networks.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *
 * - Status: fallible functions return an hpcnn_status; HPCNN_OK (0) is success. On failure nothing the
 *   function was asked to produce is written, and hpcnn_last_error() returns a message saying what was
 *   wrong and where, e.g. "layer 2 (conv2d): expected input with 32 channels, got 3x32x32".
 *   No function terminates the process, and no error ever escapes as anything but a status (one exception: an
 *   error inside a distributed hpcnn_fit ends every process of the launch, see "distributed training" below).
 * - Handles: hpcnn_model, hpcnn_dataset and hpcnn_fit_options are opaque. Each *_create / *_load
 *   function gives the caller one handle, which the caller owns and gives back with the matching
 *   *_release function. Release functions accept NULL and ignore a handle released already.
 *   Passing any other pointer as a handle returns HPCNN_INVALID_ARGUMENT.
 * - Strings in: NUL-terminated UTF-8, owned by the caller, read during the call only.
 *   Strings out: "const char*" results are owned by the library (lifetime stated per function);
 *   "char**" results are allocated by the library and must be freed with hpcnn_free().
 * - Tensors in and out are caller-owned float32 buffers in NCHW order (batch, channels, height, width),
 *   passed with their element count; the count is checked against what the call needs
 *   (HPCNN_INVALID_ARGUMENT with the expected size otherwise). The library never keeps a caller pointer
 *   after a call returns, except the callbacks and user pointer of a fit options object, which are used
 *   during hpcnn_fit only.
 * - Threads: hpcnn_predict, hpcnn_evaluate and hpcnn_forward_layer may run on one model from many threads
 *   at once (weights are only read; each call uses its own workspace). Training, loading weights,
 *   adding layers, freezing or releasing a model must not overlap with any other call on that model.
 * - ABI: functions are only ever added. HPCNN_ABI_VERSION grows when they are; check
 *   hpcnn_abi_version() >= the version you compiled against.
 */
#ifndef HPCNN_H
#define HPCNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HPCNN_ABI_VERSION 10


typedef enum hpcnn_status {
    HPCNN_OK = 0,
    HPCNN_INVALID_ARGUMENT = 1, /* a bad value, NULL, unknown handle, wrong buffer size, shape mismatch */
    HPCNN_INVALID_STATE = 2,    /* the call does not fit the object's state (e.g. fit before compile) */
    HPCNN_IO_ERROR = 3,         /* a file could not be found, read or written */
    HPCNN_INVALID_FILE = 4,     /* a file's content is corrupt, truncated or unsupported */
    HPCNN_OUT_OF_MEMORY = 5,
    HPCNN_NUMERIC_ERROR = 6,    /* training diverged (the loss became NaN or infinite) */
    HPCNN_INTERNAL = 99         /* a bug: please report the message */
} hpcnn_status;

typedef struct hpcnn_model hpcnn_model;
typedef struct hpcnn_dataset hpcnn_dataset;
typedef struct hpcnn_fit_options hpcnn_fit_options;

/* Padding modes of hpcnn_add_conv2d / hpcnn_add_maxpool2d / hpcnn_add_avgpool2d. */
#define HPCNN_PADDING_VALID 0    /* no padding; the pad_* arguments must be 0 */
#define HPCNN_PADDING_SAME 1     /* output = ceil(input / stride); extra row/column at bottom/right */
#define HPCNN_PADDING_EXPLICIT 2 /* pad_top, pad_left, pad_bottom, pad_right zeros */

/* Losses of hpcnn_model_compile_*. */
#define HPCNN_LOSS_CROSS_ENTROPY 0        /* softmax cross-entropy, >= 2 outputs, labels 0..C-1 */
#define HPCNN_LOSS_BINARY_CROSS_ENTROPY 1 /* log-loss on one output, labels 0/1: after a final sigmoid layer (fused) or,
                                             without one, taking the output as a logit (predict applies the sigmoid) */
#define HPCNN_LOSS_MSE 2                  /* squared error vs the one-hot label (or the 0/1 label for one output),
                                             mean over batch x outputs */

/* Standardisation modes of hpcnn_dataset_standardize. */
#define HPCNN_STANDARDIZE_GLOBAL 0    /* one mean and std over all pixels */
#define HPCNN_STANDARDIZE_PER_PIXEL 1 /* a mean and std per pixel position */
#define HPCNN_STANDARDIZE_NONE (-1)   /* hpcnn_model_standardization_info: the model records none (ABI 8) */

/* Pixel scales of hpcnn_model_set_pixel_scale (ABI 8): the range of the pixel values a model was trained on. */
#define HPCNN_PIXELS_0_1 0   /* [0, 1], byte / 255: what every loader of this library gives (the default) */
#define HPCNN_PIXELS_0_255 1 /* [0, 255]: the byte values as floats */

/* ---------------------------------------------------------------- library */

/* The ABI version of the loaded library (HPCNN_ABI_VERSION it was built with). Never fails. */
uint32_t hpcnn_abi_version(void);

/* The library version, e.g. "0.1.0". Static string owned by the library. Never fails. */
const char* hpcnn_version(void);

/* The kernel path in use: "avx2-fma" (AVX2 + FMA3 vector kernels) or "scalar" (portable fallback).
   Static string owned by the library. Never fails. */
const char* hpcnn_kernel_path(void);

/* The GEMM micro-kernel in use: "avx512 12x16" (AVX-512 register tiles), "avx2 6x16" or "scalar 6x16". Static string
   owned by the library. Never fails. NativeAOT fixes the instruction sets when the library is compiled, so there are
   two builds of it: libhpcnn.so (x86-64-v3: AVX2 + FMA) and libhpcnn-avx512.so (adds AVX-512 F/BW/CD/DQ/VL,
   which fails to load on a CPU without them; on Zen 5 its zmm FMAs double the peak). Both export the same ABI. */
const char* hpcnn_gemm_kernel(void);

/* The message of the last failed call on the calling thread ("" if none). Owned by the library; valid
   until the next failing call on the same thread. Never fails. */
const char* hpcnn_last_error(void);

/* Frees memory the library returned through a char** (NULL is ignored). */
void hpcnn_free(void* pointer);

/* Threads used by training and inference (default: one per core; under mpirun, the cores divided by the processes on
 * this machine). Errors: INVALID_ARGUMENT (n < 1 or > 256).
 * On Linux the library's own threads are pinned to one CPU each (the calling thread is not; not under mpirun with
 * several processes on this machine); set the environment variable HPCNN_PIN_THREADS=0 (or 1) before loading the
 * library to turn that off (or on). */
hpcnn_status hpcnn_set_threads(int32_t n);
int32_t hpcnn_get_threads(void);

/* ---------------------------------------------------------------- models */

/* An empty model for inputs of channels x height x width; weights are drawn from seed.
   *out receives a model the caller releases with hpcnn_model_release.
   Errors: INVALID_ARGUMENT (non-positive or too large dimensions, out NULL). */
hpcnn_status hpcnn_model_create(int32_t channels, int32_t height, int32_t width, uint64_t seed, hpcnn_model** out);

/* A model (and, if given, its loss and optimizer) from a JSON network spec (README: "Network spec files").
   Errors: INVALID_ARGUMENT (bad JSON or spec; the message names the field). */
hpcnn_status hpcnn_model_from_spec(const char* json, hpcnn_model** out);

/* Loads a model file written by hpcnn_model_save (or the hpcnn command). Weights, optimizer state and epochs
   trained are restored, so training can resume. Errors: IO_ERROR (missing/unreadable), INVALID_FILE (corrupt,
   truncated, wrong version, checksum mismatch, hostile sizes, a forward pass above the compute budget: see
   hpcnn_model_load_with_budget). */
hpcnn_status hpcnn_model_load(const char* path, hpcnn_model** out);

/* Saves the model atomically (a temporary file renamed over path). Errors: IO_ERROR, INVALID_ARGUMENT. */
hpcnn_status hpcnn_model_save(hpcnn_model* model, const char* path);

/* Releases a model (NULL and already-released handles are ignored). */
void hpcnn_model_release(hpcnn_model* model);

/* The model's JSON spec (architecture, seed, loss, optimizer). *out_json is freed with hpcnn_free. */
hpcnn_status hpcnn_model_spec(hpcnn_model* model, char** out_json);

/* A text table of the layers: output shapes, parameters, FLOPs. *out_text is freed with hpcnn_free. */
hpcnn_status hpcnn_model_summary(hpcnn_model* model, char** out_text);

/* Number of layers; input shape (channels, height, width); output size per sample; trainable parameters. */
hpcnn_status hpcnn_model_layer_count(hpcnn_model* model, int32_t* out_count);
hpcnn_status hpcnn_model_input_shape(hpcnn_model* model, int32_t* out_c, int32_t* out_h, int32_t* out_w);
hpcnn_status hpcnn_model_output_size(hpcnn_model* model, int32_t* out_size);
hpcnn_status hpcnn_model_parameter_count(hpcnn_model* model, int64_t* out_count);
/* Epochs trained so far (kept in the model file). */
hpcnn_status hpcnn_model_epochs_trained(hpcnn_model* model, int32_t* out_epochs);

/* Memory budget, in bytes, of the workspaces a model keeps between inference calls. Calls of any batch size run in
   workspaces of a few capacity classes (powers of two up to the batch they run at); beyond the budget the least
   recently used are freed. Until set: 256 MiB, or the last workspace's size when larger (repeated calls on large
   inputs keep theirs); once set, a hard bound (get returns the set or default value). In use at once: at most the
   budget plus one workspace per call in flight. 0 keeps none (every call plans afresh). Added in ABI 2.
   Errors: INVALID_ARGUMENT (negative). */
hpcnn_status hpcnn_model_set_inference_cache(hpcnn_model* model, int64_t bytes);
hpcnn_status hpcnn_model_get_inference_cache(hpcnn_model* model, int64_t* out_bytes);

/* ---------------------------------------------------------------- building a network
 * Each call appends one layer and checks it against the current output shape: a layer that does not fit
 * returns INVALID_ARGUMENT with a message naming it ("layer 3 (dense): expected a flat input ...").
 * Convolution and dense weights use PyTorch's default initialisation from the model seed.
 * Every hpcnn_add_* function writes its arguments as a layer object of the JSON spec and goes through
 * hpcnn_add_layer_json: the defaults and the rules are the spec's (README, "Network spec files"), and a value the
 * spec refuses is refused here with the same message, naming the function and argument
 * ("hpcnn_add_relu.cap: relu: cap must be positive, got -1"). The only C-specific values are the sentinels for
 * "not given" documented below (since ABI 7 other out-of-range values fail instead of falling back to a default). */

/* Convolution: filters of kernel_h x kernel_w over all input channels; bias if bias != 0.
   padding_mode is HPCNN_PADDING_*; pad_* are used with HPCNN_PADDING_EXPLICIT and must be 0 otherwise. */
hpcnn_status hpcnn_add_conv2d(hpcnn_model* model, int32_t filters, int32_t kernel_h, int32_t kernel_w,
                              int32_t stride_h, int32_t stride_w, int32_t padding_mode,
                              int32_t pad_top, int32_t pad_left, int32_t pad_bottom, int32_t pad_right, int32_t bias);
/* Max / average pooling over kernel_h x kernel_w windows (stride 0 means: equal to the window). */
hpcnn_status hpcnn_add_maxpool2d(hpcnn_model* model, int32_t kernel_h, int32_t kernel_w, int32_t stride_h, int32_t stride_w,
                                 int32_t padding_mode, int32_t pad_top, int32_t pad_left, int32_t pad_bottom, int32_t pad_right);
hpcnn_status hpcnn_add_avgpool2d(hpcnn_model* model, int32_t kernel_h, int32_t kernel_w, int32_t stride_h, int32_t stride_w,
                                 int32_t padding_mode, int32_t pad_top, int32_t pad_left, int32_t pad_bottom, int32_t pad_right);
/* ReLU; cap > 0 limits the output to [0, cap]; cap 0 (or +infinity) means uncapped. Errors: INVALID_ARGUMENT
   (negative or NaN cap: since ABI 7; before, it silently meant uncapped). */
hpcnn_status hpcnn_add_relu(hpcnn_model* model, float cap);
hpcnn_status hpcnn_add_leaky_relu(hpcnn_model* model, float alpha);
hpcnn_status hpcnn_add_sigmoid(hpcnn_model* model);
hpcnn_status hpcnn_add_tanh(hpcnn_model* model);
hpcnn_status hpcnn_add_softmax(hpcnn_model* model);
hpcnn_status hpcnn_add_flatten(hpcnn_model* model);
/* Dense (fully connected) layer of units outputs; needs a flat input (add a flatten layer first). */
hpcnn_status hpcnn_add_dense(hpcnn_model* model, int32_t units, int32_t bias);
/* Per-feature-map normalisation (zero mean, unit std per plane): (x - mean) / sqrt(biased variance + epsilon);
   epsilon 0 means the default 1e-5. Errors: INVALID_ARGUMENT (negative or NaN epsilon: since ABI 7). */
hpcnn_status hpcnn_add_feature_map_norm(hpcnn_model* model, float epsilon);
/* Batch normalisation per channel (train/eval modes); epsilon 0 means the default 1e-5, momentum -1 the default 0.1
   (PyTorch's: the weight of the new batch in the running statistics). Errors: INVALID_ARGUMENT (a negative epsilon,
   a momentum outside [0, 1] other than -1, NaN: since ABI 7; before, they silently meant the defaults). */
hpcnn_status hpcnn_add_batchnorm2d(hpcnn_model* model, float epsilon, float momentum);
/* Inverted dropout of rate in [0, 1), masks seeded by seed; off in inference. */
hpcnn_status hpcnn_add_dropout(hpcnn_model* model, float rate, uint64_t seed);
/* Any layer from one JSON object of the spec format, e.g. {"type":"conv2d","filters":8,"kernel":[3,5],"init":"he"}.
   Every layer type is reachable here, also those without an hpcnn_add_* function of their own. */
hpcnn_status hpcnn_add_layer_json(hpcnn_model* model, const char* json);

/* Sets the loss (HPCNN_LOSS_*) and an SGD optimizer (PyTorch semantics) / an Adam optimizer.
   Errors: INVALID_ARGUMENT (loss does not fit the output: cross-entropy needs >= 2 outputs, binary 1). */
hpcnn_status hpcnn_model_compile_sgd(hpcnn_model* model, int32_t loss, float learning_rate, float momentum,
                                     int32_t nesterov, float weight_decay);
hpcnn_status hpcnn_model_compile_adam(hpcnn_model* model, int32_t loss, float learning_rate, float beta1, float beta2,
                                      float epsilon, float weight_decay);
/* Changes the optimizer's base learning rate. Errors: INVALID_STATE (not compiled). */
hpcnn_status hpcnn_model_set_learning_rate(hpcnn_model* model, float learning_rate);
/* Learning-rate schedules, applied per epoch: step (multiply by gamma every step_size epochs) or cosine
   (anneal to min_factor x the base rate over epochs). Errors: INVALID_STATE (not compiled). */
hpcnn_status hpcnn_model_set_step_schedule(hpcnn_model* model, int32_t step_size, float gamma);
hpcnn_status hpcnn_model_set_cosine_schedule(hpcnn_model* model, int32_t epochs, float min_factor);

/* ---------------------------------------------------------------- layers and parameters */

/* Layer kind ("conv2d", "relu", ...): static string owned by the library. */
hpcnn_status hpcnn_layer_kind(hpcnn_model* model, int32_t layer, const char** out_kind);
/* Output shape of a layer for one sample (a flat vector of F is F x 1 x 1). */
hpcnn_status hpcnn_layer_output_shape(hpcnn_model* model, int32_t layer, int32_t* out_c, int32_t* out_h, int32_t* out_w);
/* Number of parameter tensors of a layer (conv2d/dense: weight[, bias]; batchnorm2d: gamma, beta,
   running_mean, running_var; others: 0). */
hpcnn_status hpcnn_layer_param_count(hpcnn_model* model, int32_t layer, int32_t* out_count);
/* Name, rank, dimensions (out_dims holds up to 8) and element count of parameter tensor `index` of a layer.
   *out_name is owned by the model and valid until it is released. Conv weights are filters x in_channels x kh x kw,
   dense weights units x in_features. */
hpcnn_status hpcnn_layer_param_info(hpcnn_model* model, int32_t layer, int32_t index, const char** out_name,
                                    int32_t* out_rank, int32_t* out_dims, int64_t* out_count);
/* Copies a parameter's values out / in (count must equal the tensor's element count). Setting values lets
   hand-made filters be loaded. Errors: INVALID_ARGUMENT (unknown layer or name, wrong count). */
hpcnn_status hpcnn_get_param(hpcnn_model* model, int32_t layer, const char* name, float* out_values, int64_t count);
hpcnn_status hpcnn_set_param(hpcnn_model* model, int32_t layer, const char* name, const float* values, int64_t count);
/* Freezes (frozen != 0) or unfreezes a layer: a frozen layer's parameters do not change in training. */
hpcnn_status hpcnn_set_frozen(hpcnn_model* model, int32_t layer, int32_t frozen);
hpcnn_status hpcnn_is_frozen(hpcnn_model* model, int32_t layer, int32_t* out_frozen);

/* ---------------------------------------------------------------- running */

/* Class probabilities of n images (input: n x C x H x W floats) into out (n x output size floats).
   Softmax / sigmoid is applied when the model outputs logits for a cross-entropy loss; an MSE or
   uncompiled model gives its raw outputs. Thread-safe. */
hpcnn_status hpcnn_predict(hpcnn_model* model, const float* input, int64_t n, float* out, int64_t out_count);
/* The predicted class of each of n images into out_classes (n int32). Thread-safe. */
hpcnn_status hpcnn_predict_classes(hpcnn_model* model, const float* input, int64_t n, int32_t* out_classes);
/* The output of layer `layer` (feature maps; taken before any fused ReLU) for n images into out
   (n x that layer's output size floats), in inference mode. Thread-safe. */
hpcnn_status hpcnn_forward_layer(hpcnn_model* model, int32_t layer, const float* input, int64_t n, float* out, int64_t out_count);

/* ---------------------------------------------------------------- datasets */

/* A dataset from caller memory (copied): n images of c x h x w floats and n labels in [0, classes). */
hpcnn_status hpcnn_dataset_create(const float* images, const int32_t* labels, int64_t n, int32_t c, int32_t h, int32_t w,
                                  int32_t classes, hpcnn_dataset** out);
/* Loads IDX image and label files (raw or gzip); pixels are scaled to [0, 1]; classes <= 0 means max label + 1.
   Errors: IO_ERROR (missing), INVALID_FILE (bad magic, truncated, counts differ; the message names the file). */
hpcnn_status hpcnn_dataset_load_idx(const char* images_path, const char* labels_path, int32_t classes, hpcnn_dataset** out);
/* Fashion-MNIST's training (train != 0) or test set from directory (NULL: /usr/share/datasets/fashion-mnist,
   the Debian package dataset-fashion-mnist). */
hpcnn_status hpcnn_dataset_load_fashion_mnist(const char* directory, int32_t train, hpcnn_dataset** out);
void hpcnn_dataset_release(hpcnn_dataset* dataset);
/* Count, image shape and class count. */
hpcnn_status hpcnn_dataset_info(hpcnn_dataset* dataset, int64_t* out_n, int32_t* out_c, int32_t* out_h, int32_t* out_w,
                                int32_t* out_classes);
/* Copies the images (n x c x h x w floats) / labels (n int32) out; count must match. */
hpcnn_status hpcnn_dataset_get_images(hpcnn_dataset* dataset, float* out, int64_t count);
hpcnn_status hpcnn_dataset_get_labels(hpcnn_dataset* dataset, int32_t* out, int64_t count);
/* Keeps only the classes listed (relabelled 0..k-1 in the order given) into a new dataset. */
hpcnn_status hpcnn_dataset_filter_classes(hpcnn_dataset* dataset, const int32_t* classes, int32_t k, hpcnn_dataset** out);
/* Splits off the last `count` images: *out_first gets the rest, *out_last the last count. */
hpcnn_status hpcnn_dataset_split_last(hpcnn_dataset* dataset, int64_t count, hpcnn_dataset** out_first, hpcnn_dataset** out_last);
/* Standardises `fit_on` in place with its own statistics (HPCNN_STANDARDIZE_*), and `also` (may be NULL) with
   the same statistics (train statistics applied to validation/test data). Each dataset remembers the statistics, and
   hpcnn_fit records them (and the dataset's class names) in the model, which saves them: see "preprocessing" below.
   Errors: INVALID_STATE (a dataset standardised already: standardise raw images once). */
hpcnn_status hpcnn_dataset_standardize(hpcnn_dataset* fit_on, hpcnn_dataset* also, int32_t mode);

/* ---------------------------------------------------------------- more datasets (ABI 6) */

/* MNIST's training (train != 0) or test set from directory (required): IDX files named as Fashion-MNIST's
   (train-images-idx3-ubyte(.gz), ...), 1 x 28 x 28, classes "0".."9", pixels in [0, 1].
   Errors: IO_ERROR (folder or file missing; the message says where to get them), INVALID_FILE. */
hpcnn_status hpcnn_dataset_load_mnist(const char* directory, int32_t train, hpcnn_dataset** out);
/* CIFAR-10's training set (train != 0: data_batch_1.bin ... data_batch_5.bin, 50,000 images) or test set
   (test_batch.bin, 10,000) from directory (required; the cifar-10-batches-bin folder of the binary version from
   https://www.cs.toronto.edu/~kriz/cifar.html, or the folder holding it). 3 x 32 x 32 (RGB planes), pixels in
   [0, 1]; class names from batches.meta.txt when present. Errors: IO_ERROR (missing), INVALID_FILE (a size that is
   not a whole number of 3,073-byte records, a label >= 10, a bad meta file; the message names the file). */
hpcnn_status hpcnn_dataset_load_cifar10(const char* directory, int32_t train, hpcnn_dataset** out);
/* The name of class `index` of a dataset (its number when the dataset has no names), into *out_name, allocated by
   the library: free it with hpcnn_free. Errors: INVALID_ARGUMENT (index outside [0, classes)). */
hpcnn_status hpcnn_dataset_class_name(hpcnn_dataset* dataset, int32_t index, char** out_name);

/* ---------------------------------------------------------------- image folders (ABI 9) */

/* Flags of hpcnn_dataset_load_image_folder. */
#define HPCNN_IMAGE_FOLDER_SKIP_UNREADABLE 1 /* leave out files that cannot be decoded (listed in *out_skipped) */
#define HPCNN_IMAGE_FOLDER_SHUFFLE 2         /* shuffle the images with `seed` (else sorted: class, then path) */

/* A folder of images with one subfolder per class, as torchvision's ImageFolder reads it (photos/cat/1.jpg, ...):
   classes are the subfolder names sorted by byte value (labels 0..k-1, hpcnn_dataset_class_name gives them); every
   .png, .jpg, .jpeg, .bmp and .gif file below a class folder (any case) is decoded, converted to gray (channels 1,
   luma) or RGB (channels 3), resized (bilinear, antialiased) to height x width and scaled to [0, 1].
   For a validation split, shuffle and take the last images with hpcnn_dataset_split_last (or let hpcnn_fit do it
   with hpcnn_fit_options_set_validation_split): the sorted order would hold out whole classes.
   The decoded images take n x channels x height x width x 4 bytes; that estimate is checked against max_bytes
   (<= 0: half the memory available now) before any file is decoded (OUT_OF_MEMORY, with the numbers, when larger).
   An unreadable file fails the call (INVALID_FILE, the message names every such file) unless flags has
   HPCNN_IMAGE_FOLDER_SKIP_UNREADABLE; then *out_skipped (may be NULL) gets one line per file left out ("path: reason; skipped"),
   allocated by the library (free it with hpcnn_free), or NULL when none was. Errors: IO_ERROR (no such folder),
   INVALID_FILE (no class folders, a class folder without images, unreadable files), INVALID_ARGUMENT (channels not
   1 or 3, a size outside 1..16384, unknown flags), OUT_OF_MEMORY. */
hpcnn_status hpcnn_dataset_load_image_folder(const char* directory, int32_t channels, int32_t height, int32_t width,
                                             int32_t flags, uint64_t seed, int64_t max_bytes, char** out_skipped,
                                             hpcnn_dataset** out);

/* ---------------------------------------------------------------- training */

/* Called after every epoch; return non-zero to stop training. val_loss / val_accuracy are NaN without
   validation data. */
typedef int32_t (*hpcnn_epoch_callback)(void* user, int32_t epoch, int32_t epochs, double train_loss, double train_accuracy,
                                        double val_loss, double val_accuracy, double seconds, double samples_per_second);
/* Called after every batch; return non-zero to stop training after this batch. */
typedef int32_t (*hpcnn_batch_callback)(void* user, int32_t epoch, int32_t epochs, int32_t batch, int32_t batches,
                                        double running_loss, double running_accuracy);

/* Options of hpcnn_fit. Defaults: 1 epoch, batch size 32, shuffle on, seed = the model seed, the library's thread
   count (hpcnn_set_threads; a thread count set here applies to that fit alone and leaves the library's unchanged),
   no validation, no callbacks, no early stopping. Setters return INVALID_ARGUMENT for out-of-range values. */
hpcnn_status hpcnn_fit_options_create(hpcnn_fit_options** out);
void hpcnn_fit_options_release(hpcnn_fit_options* options);
hpcnn_status hpcnn_fit_options_set_epochs(hpcnn_fit_options* options, int32_t epochs);
hpcnn_status hpcnn_fit_options_set_batch_size(hpcnn_fit_options* options, int32_t batch_size);
hpcnn_status hpcnn_fit_options_set_shuffle(hpcnn_fit_options* options, int32_t shuffle);
hpcnn_status hpcnn_fit_options_set_seed(hpcnn_fit_options* options, uint64_t seed);
hpcnn_status hpcnn_fit_options_set_threads(hpcnn_fit_options* options, int32_t threads);
/* Validation data checked after every epoch (the options keep a reference; release the dataset after hpcnn_fit). */
hpcnn_status hpcnn_fit_options_set_validation(hpcnn_fit_options* options, hpcnn_dataset* validation);
/* Holds out the last fraction (0 < f < 1) of the training data when no validation set is given. */
hpcnn_status hpcnn_fit_options_set_validation_split(hpcnn_fit_options* options, double fraction);
/* Stop when validation loss (monitor_accuracy != 0: accuracy) has not improved by min_delta for patience epochs;
   restore_best != 0 puts back the best epoch's weights. */
hpcnn_status hpcnn_fit_options_set_early_stopping(hpcnn_fit_options* options, int32_t patience, double min_delta,
                                                  int32_t monitor_accuracy, int32_t restore_best);
hpcnn_status hpcnn_fit_options_set_callbacks(hpcnn_fit_options* options, hpcnn_epoch_callback on_epoch,
                                             hpcnn_batch_callback on_batch, void* user);
/* The batch callback runs at most once per `seconds` of training, and always after each epoch's first and last batch;
   0 (the default) runs it after every batch. A call into an interpreter costs tens of microseconds, more than a
   small network's whole step: a progress display or a Ctrl-C check wants an interval (Python's fit uses 0.1 s
   unless a callback of the user's asks for every batch). ABI 5. */
hpcnn_status hpcnn_fit_options_set_batch_callback_interval(hpcnn_fit_options* options, double seconds);

/* Trains the model (compile it first). options may be NULL (defaults). *out_epochs (may be NULL) receives the
   epochs completed; a callback asking to stop is not an error. Errors: INVALID_STATE (not compiled),
   INVALID_ARGUMENT (data does not fit the model, labels out of range, NaN or infinity in the data), NUMERIC_ERROR (loss
   or weights diverged; with checkpoints on, the last good checkpoint is kept and named in the message). */
hpcnn_status hpcnn_fit(hpcnn_model* model, hpcnn_dataset* train, const hpcnn_fit_options* options, int32_t* out_epochs);

/* Mean loss and accuracy on a dataset (inference mode). batch_size <= 0 means 256. Thread-safe. */
hpcnn_status hpcnn_evaluate(hpcnn_model* model, hpcnn_dataset* data, int32_t batch_size, double* out_loss, double* out_accuracy);

/* One training step on a batch from caller memory: n images and n labels. *out_loss (may be NULL) gets the loss. */
hpcnn_status hpcnn_train_batch(hpcnn_model* model, const float* images, const int32_t* labels, int64_t n, double* out_loss);

/* ---------------------------------------------------------------- checkpoints, data checks, compute budget (ABI 3) */

/* Crash-safe checkpoints during hpcnn_fit, into `directory` (created if needed; NULL turns checkpoints off): one at
   every epoch end, one when a callback stops training mid-epoch, one every `every_batches` batches (0: none) and one
   whenever `every_seconds` have passed since the last (<= 0: none). A checkpoint is a model file
   (docs/model-format.md) that also holds the whole training state (optimizer state and step count, schedule
   position, shuffling generator, the epoch's data order and position, early-stopping state, metrics so far),
   written atomically (temporary file, fsync, rename, fsync of the folder) as checkpoint-NNNNNNNN.hpcnn; the two
   newest are kept. hpcnn_model_load reads one as a model. Errors: INVALID_ARGUMENT (negative every_batches). */
hpcnn_status hpcnn_fit_options_set_checkpoint(hpcnn_fit_options* options, const char* directory, int32_t every_batches,
                                              double every_seconds);
/* resume != 0: hpcnn_fit continues from the newest good checkpoint in the checkpoint directory (a damaged one is
   renamed *.corrupt, reported through the message callback, and the one before it used; with none there, training
   starts from the beginning). The model must have the checkpoint's architecture and optimizer (build it the same way,
   or take hpcnn_checkpoint_load's); its weights, optimizer state and epochs trained are replaced by the checkpoint's,
   and the fit ends with the bytes an uninterrupted fit would have. hpcnn_fit then fails with INVALID_ARGUMENT if the
   batch size, shuffle, seed or data differ from the run's. *out_epochs counts the restored epochs too. */
hpcnn_status hpcnn_fit_options_set_resume(hpcnn_fit_options* options, int32_t resume);
/* check != 0 (the default): before training, hpcnn_fit refuses training or validation data holding NaN or infinity
   with INVALID_ARGUMENT naming the first bad sample (one pass over the data; without it a bad value only shows up
   as a diverged loss). Labels outside the model's classes are always refused. */
hpcnn_status hpcnn_fit_options_set_check_data(hpcnn_fit_options* options, int32_t check);
/* Called with notices about checkpoints (a damaged one skipped, where a resume starts); message is valid during the
   call only. Without a callback they go to standard error. */
typedef void (*hpcnn_message_callback)(void* user, const char* message);
hpcnn_status hpcnn_fit_options_set_message_callback(hpcnn_fit_options* options, hpcnn_message_callback on_message, void* user);
/* The history of the last hpcnn_fit that returned with these options, as JSON: {"epochs": [{"epoch", "train_loss",
   "train_accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_second", "learning_rate"}, ...],
   "resumed_epochs": N (the first N came from the checkpoint), "resumed_from", "stop_reason", "restored_epoch",
   "last_checkpoint", "checkpoints_written", "ranks" (processes the fit split its batches over: 1 unless distributed;
   ABI 10), "communication_seconds" (time this process spent exchanging gradients with the others; ABI 10)}
   (null where none). *out_json is freed with hpcnn_free.
   Errors: INVALID_STATE (no fit returned yet). */
hpcnn_status hpcnn_fit_options_history_json(hpcnn_fit_options* options, char** out_json);
/* The model of the newest good checkpoint in directory (weights, optimizer state, epochs trained), to continue with
   hpcnn_fit_options_set_resume or to use as it is. Errors: IO_ERROR (no checkpoint there), INVALID_FILE (none usable). */
hpcnn_status hpcnn_checkpoint_load(const char* directory, hpcnn_model** out);

/* Model files and JSON specs are untrusted input: hpcnn_model_load and hpcnn_model_from_spec refuse a network whose
   forward pass costs more than a budget of FLOPs per image (computed from the layer shapes before any weight is
   read), with INVALID_FILE and a message naming the layer and the cost. The default budget (10 GFLOP per image) is
   what this returns; real small CNNs cost well under 1 GFLOP. */
int64_t hpcnn_default_max_flops_per_image(void);
/* hpcnn_model_load / hpcnn_model_from_spec with another budget (0: the default). Errors: as those, and
   INVALID_ARGUMENT (negative budget). */
hpcnn_status hpcnn_model_load_with_budget(const char* path, int64_t max_flops_per_image, hpcnn_model** out);
hpcnn_status hpcnn_model_from_spec_with_budget(const char* json, int64_t max_flops_per_image, hpcnn_model** out);

/* ---------------------------------------------------------------- ONNX (ABI 4) */

/* hpcnn_model_save_onnx flag: put the model's standardisation (hpcnn_model_get_standardization) in front of
   the graph as Sub mean, Mul 1/std (global) or Div std (per pixel), so the ONNX model takes raw pixel values. */
#define HPCNN_ONNX_EMBED_STANDARDIZATION 1

/* Writes the model as an ONNX file (opset 13, IR version 7), atomically. Input "input" float [batch, C, H, W], output
   "output" float [batch, outputs]: what hpcnn_predict gives (a Softmax, or a Sigmoid, ends the graph when the model is
   compiled with cross-entropy, or binary cross-entropy, and does not end with one). The batch dimension is symbolic.
   Dropout layers are left out (inference). metadata_props: hpcnn_version, class_names (JSON array, when the model
   records them), hpcnn_spec, hpcnn_metadata, hpcnn_preprocessing (read back by hpcnn_model_load_onnx). flags: 0 or HPCNN_ONNX_EMBED_STANDARDIZATION.
   Errors: INVALID_ARGUMENT (unknown flags, NULL path), INVALID_STATE (no layers; the embed flag on a model without a
   saved standardisation), IO_ERROR. */
hpcnn_status hpcnn_model_save_onnx(hpcnn_model* model, const char* path, int32_t flags);

/* Reads an ONNX file that is a chain of supported operators (Conv, Gemm, MatMul + Add, Relu, Clip(0, cap), LeakyRelu,
   Sigmoid, Tanh, Softmax, MaxPool, AveragePool, BatchNormalization, InstanceNormalization with scale 1 and bias 0,
   Flatten, Reshape to [batch, -1], zero Pad folded into the next Conv or AveragePool, Constant, Identity, Dropout), as
   torch.onnx.export writes them, into a new model (not compiled: compile it to train). The caller owns *out (release
   with hpcnn_model_release). max_flops_per_image: the compute budget (0: the default, see hpcnn_model_load_with_budget).
   Errors: IO_ERROR (missing/unreadable), INVALID_FILE (not ONNX, an unsupported operator or attribute: the message
   names the node and its operator; branches, external data, missing initializers, cycles, hostile sizes, above the
   compute budget), INVALID_ARGUMENT (negative budget). */
hpcnn_status hpcnn_model_load_onnx(const char* path, int64_t max_flops_per_image, hpcnn_model** out);

/* ---------------------------------------------------------------- layer types (ABI 7) */

/* The layer types the library knows, as a JSON array of {"type": "conv2d", "aliases": ["conv"], "fields": ["filters",
   "kernel", ...]} (besides the fields every layer takes: "type", "frozen", "name"), in the README table's order: what
   hpcnn_add_layer_json accepts. *out_json is freed with hpcnn_free. Errors: INVALID_ARGUMENT (out_json NULL). */
hpcnn_status hpcnn_layer_types(char** out_json);

/* ---------------------------------------------------------------- preprocessing (ABI 8) */

/* A model keeps what turns a raw image into its input, saved in its file by hpcnn_model_save and read back by
   hpcnn_model_load (also from files the hpcnn command wrote), so a program that reloads a model predicts on new
   images with hpcnn_predict_raw_u8 and no preprocessing code of its own: the pixel scale it was trained in
   (HPCNN_PIXELS_*), the standardisation applied after it, and the class names. The input size and channels are
   hpcnn_model_input_shape. hpcnn_fit records the standardisation of a dataset standardised by
   hpcnn_dataset_standardize, and its class names (the loaders' names); statistics that differ from the ones the model
   records already are refused (INVALID_ARGUMENT): standardise new data with the model's (hpcnn_model_get_standardization). */

/* Sets the standardisation: mode HPCNN_STANDARDIZE_GLOBAL with count 1, HPCNN_STANDARDIZE_PER_PIXEL with count =
   channels x height x width, or HPCNN_STANDARDIZE_NONE with count 0 (mean, std may be NULL) to clear it.
   Errors: INVALID_ARGUMENT (unknown mode, a count that does not fit, a deviation <= 0, a value not finite). */
hpcnn_status hpcnn_model_set_standardization(hpcnn_model* model, int32_t mode, const float* mean, const float* std, int64_t count);
/* The standardisation's mode (HPCNN_STANDARDIZE_NONE when the model records none) and its number of means (and of
   deviations): 1 (global) or channels x height x width (per pixel), 0 for none. */
hpcnn_status hpcnn_model_standardization_info(hpcnn_model* model, int32_t* out_mode, int64_t* out_count);
/* Copies the means and deviations out; count must be hpcnn_model_standardization_info's. Errors: INVALID_STATE (the
   model records none), INVALID_ARGUMENT (count). */
hpcnn_status hpcnn_model_get_standardization(hpcnn_model* model, float* out_mean, float* out_std, int64_t count);
/* The pixel scale (HPCNN_PIXELS_0_1, the default, or HPCNN_PIXELS_0_255). */
hpcnn_status hpcnn_model_set_pixel_scale(hpcnn_model* model, int32_t scale);
hpcnn_status hpcnn_model_get_pixel_scale(hpcnn_model* model, int32_t* out_scale);
/* Sets the class names (count UTF-8 strings, copied; at most the number of classes the model scores), or clears
   them (count 0; names may be NULL). */
hpcnn_status hpcnn_model_set_class_names(hpcnn_model* model, const char* const* names, int32_t count);
/* How many class names the model records (0: none). */
hpcnn_status hpcnn_model_class_name_count(hpcnn_model* model, int32_t* out_count);
/* The name of class `index` (its number when the model has no name for it) into *out_name, allocated by the library:
   free it with hpcnn_free. Errors: INVALID_ARGUMENT (index outside the classes the model scores). */
hpcnn_status hpcnn_model_class_name(hpcnn_model* model, int32_t index, char** out_name);
/* Copies a dataset's standardisation (as hpcnn_dataset_standardize left it; none if it did not) and class names into
   the model, replacing the model's. Errors: INVALID_ARGUMENT (images of another shape than the model's input). */
hpcnn_status hpcnn_model_set_preprocessing_from_dataset(hpcnn_model* model, hpcnn_dataset* dataset);
/* Class probabilities of n raw images, as hpcnn_predict gives them: pixels holds n x C x H x W bytes 0-255 (planes, NCHW),
   scaled to the model's pixel scale (x / 255 as the loaders do it, for HPCNN_PIXELS_0_1) and standardised as the model
   records; the result is bitwise hpcnn_predict's on the images so preprocessed. Thread-safe. */
hpcnn_status hpcnn_predict_raw_u8(hpcnn_model* model, const uint8_t* pixels, int64_t n, float* out, int64_t out_count);
/* The same for float pixels already in the model's pixel scale ([0, 1] unless set otherwise), standardised as the
   model records. Errors: INVALID_ARGUMENT (a value outside the scale, or NaN: the message names the image and pixel). */
hpcnn_status hpcnn_predict_raw(hpcnn_model* model, const float* pixels, int64_t n, float* out, int64_t out_count);

/* ---------------------------------------------------------------- distributed training (ABI 10) */

/* Data-parallel training over the processes of an Open MPI launch (mpirun -np N program ...; N = 1, 2, 4, 8 or 16):
   every process loads the same data and builds the same model (same seed, same options), then calls hpcnn_fit; each
   computes its share of every batch, the gradients are summed, and every process ends with the same weights, equal bit
   for bit to a one-process fit with the same batch size and seed (at any thread count). Batch size and learning rate
   keep their one-process meaning. hpcnn_fit first checks that data, options and starting weights agree on every
   process (a difference ends them all, naming what differs: see below). Rank 0 alone runs the validation (the others get its figures) and writes
   checkpoints; the callbacks run on every process with the same figures, so print or save on rank 0 only
   (hpcnn_distributed_rank() == 0). Open MPI 4 (libmpi.so.40) is loaded when a distributed fit starts; the library
   runs without it otherwise. Processes on one machine share its cores: under mpirun each gets its share by default
   (cores / processes on this machine, from OMPI_COMM_WORLD_LOCAL_SIZE) and does not pin its threads, since every
   process would pin them to the same first CPUs (2 processes of 2 threads on 2 cores: 5.4x slower pinned, 1.45x
   unpinned, than 2 processes of 1 thread); HPCNN_PIN_THREADS=1 pins anyway.
   Unlike every other call: an error inside a distributed hpcnn_fit (ranks that differ, a diverged loss) cannot be
   returned, since the other processes would wait for this one forever: the message goes to standard error and every
   process of the launch exits with code 1 (MPI_Abort). A process that fails before hpcnn_fit (a missing data file)
   should exit non-zero: mpirun then ends the others. */

/* mode -1 (the default): distributed when launched by mpirun with more than one process (its environment says so);
   0: never (each process trains alone); 1: required (starts MPI even in a process launched alone, as one rank).
   hpcnn_fit with mode 1 fails with INVALID_STATE when Open MPI is not installed (the message says what to install) or
   after hpcnn_distributed_finalize ended MPI. Errors: INVALID_ARGUMENT (another mode). */
hpcnn_status hpcnn_fit_options_set_distributed(hpcnn_fit_options* options, int32_t mode);
/* This process's rank in the launch (0 outside one) and the number of processes (1 outside one). Read from the
   launch's environment until MPI starts, so they answer before the first fit. Never fail. */
int32_t hpcnn_distributed_rank(void);
int32_t hpcnn_distributed_size(void);
/* Ends MPI (MPI_Finalize) if a distributed fit of this process started it; call it once, after the last distributed
   fit and before the process exits (Open MPI reports a process that exits without it as failed, and the library
   cannot do it at exit when C or Python hosts it). No distributed fit can run afterwards. Does nothing when MPI was
   not started, or was started by the host (mpi4py: the host then ends it). Calling it again does nothing. */
hpcnn_status hpcnn_distributed_finalize(void);

#ifdef __cplusplus
}
#endif

#endif /* HPCNN_H */
