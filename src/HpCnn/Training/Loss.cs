namespace HpCnn.Training;

/// <summary>The training objective. Each loss is the mean over the batch.</summary>
public enum LossKind
{
    /// <summary>
    /// Softmax cross-entropy for C &gt;= 2 classes. Works from logits: if the model ends with a Softmax layer,
    /// the loss reads that layer's input and the softmax and loss gradients are fused (p - y).
    /// </summary>
    CrossEntropy,
    /// <summary>
    /// Binary log-loss for one output and labels 0/1. Works from the logit: if the model ends with a Sigmoid
    /// layer, the loss reads that layer's input and the gradients are fused (p - y).
    /// </summary>
    BinaryCrossEntropy,
    /// <summary>Mean squared error against the one-hot label (C &gt; 1 outputs) or the 0/1 label (one output).</summary>
    MeanSquaredError,
}

public static class LossKindNames
{
    public static string Name(this LossKind k) => k switch
    {
        LossKind.CrossEntropy => "cross_entropy",
        LossKind.BinaryCrossEntropy => "binary_cross_entropy",
        _ => "mse",
    };

    public static LossKind Parse(string name) => name.ToLowerInvariant().Replace('-', '_') switch
    {
        "cross_entropy" or "crossentropy" or "ce" or "categorical_crossentropy" or "sparse_categorical_crossentropy" => LossKind.CrossEntropy,
        "binary_cross_entropy" or "binary_crossentropy" or "bce" or "log_loss" or "logloss" => LossKind.BinaryCrossEntropy,
        "mse" or "mean_squared_error" => LossKind.MeanSquaredError,
        _ => throw new ArgumentException($"unknown loss '{name}' (use cross_entropy, binary_cross_entropy or mse)"),
    };
}
