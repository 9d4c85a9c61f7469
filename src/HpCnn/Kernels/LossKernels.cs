using System.Numerics.Tensors;

namespace HpCnn.Kernels;

/// <summary>
/// Softmax and the losses, row by row over a batch (rows x cols, row-major). Every loss is the mean over
/// the batch and writes d loss / d input, already divided by the batch size. Sums run in a fixed order.
/// </summary>
public static class LossKernels
{
    /// <summary>probs = softmax(logits) per row, stable (the row maximum is subtracted first).</summary>
    public static void Softmax(ReadOnlySpan<float> logits, Span<float> probs, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            var z = logits.Slice(r * cols, cols);
            var p = probs.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(z);
            TensorPrimitives.Subtract(z, max, p);
            ElementwiseKernels.Map(p, p, new ExpOp());
            float sum = LaneSum.Sum(p);
            TensorPrimitives.Multiply(p, 1f / sum, p);
        }
    }

    /// <summary>Softmax backward from its output: dx = y (dy - sum(dy y)).</summary>
    public static void SoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            var yr = y.Slice(r * cols, cols);
            var dyr = dy.Slice(r * cols, cols);
            var dxr = dx.Slice(r * cols, cols);
            float dot = LaneSum.Dot(yr, dyr);
            TensorPrimitives.Subtract(dyr, dot, dxr);
            TensorPrimitives.Multiply(dxr, yr, dxr);
        }
    }

    /// <summary>
    /// Softmax cross-entropy from logits: returns the mean loss; grad (may be empty) = (softmax - onehot) / rows.
    /// <paramref name="probs"/> receives the probabilities (rows x cols). With <paramref name="batchRows"/>, the rows are part
    /// of a batch of that many (split over processes) and the gradient is divided by it instead.
    /// </summary>
    public static double SoftmaxCrossEntropy(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, Span<float> probs, Span<float> grad, int rows, int cols,
        int batchRows = 0)
    {
        double total = 0;
        float invRows = 1f / (batchRows > 0 ? batchRows : rows);
        for (int r = 0; r < rows; r++)
        {
            var z = logits.Slice(r * cols, cols);
            var p = probs.Slice(r * cols, cols);
            int label = labels[r];
            if ((uint)label >= (uint)cols) throw new ArgumentException($"label {label} of sample {r} is outside the {cols} classes of the output");
            float max = TensorPrimitives.Max(z);
            TensorPrimitives.Subtract(z, max, p);
            ElementwiseKernels.Map(p, p, new ExpOp());
            float sum = LaneSum.Sum(p);
            // -log softmax[label] = log(sum) - (z[label] - max)
            total += Math.Log(sum) - (z[label] - max);
            TensorPrimitives.Multiply(p, 1f / sum, p);
            if (!grad.IsEmpty)
            {
                var g = grad.Slice(r * cols, cols);
                TensorPrimitives.Multiply(p, invRows, g);
                g[label] -= invRows;
            }
        }
        return total / rows;
    }

    /// <summary>
    /// Binary log-loss from logits (one column): loss = mean of max(z,0) - z y + log(1 + exp(-|z|));
    /// grad = (sigmoid(z) - y) / rows (or / <paramref name="batchRows"/>, as above); <paramref name="probs"/> receives sigmoid(z).
    /// </summary>
    public static double BinaryCrossEntropy(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, Span<float> probs, Span<float> grad, int rows,
        int batchRows = 0)
    {
        double total = 0;
        float invRows = 1f / (batchRows > 0 ? batchRows : rows);
        for (int r = 0; r < rows; r++)
        {
            int label = labels[r];
            if ((uint)label > 1) throw new ArgumentException($"label {label} of sample {r} is not 0 or 1 (binary log-loss needs a two-class task)");
            double z = logits[r];
            total += Math.Max(z, 0) - z * label + Math.Log(1 + Math.Exp(-Math.Abs(z)));
            float p = (float)(1 / (1 + Math.Exp(-z)));
            probs[r] = p;
            if (!grad.IsEmpty) grad[r] = (p - label) * invRows;
        }
        return total / rows;
    }

    /// <summary>
    /// Mean squared error over all rows x cols values against the one-hot label (cols &gt; 1) or the label
    /// itself (cols == 1). grad = 2 (y - t) / (rows cols) (rows: <paramref name="batchRows"/> when given, as above).
    /// </summary>
    public static double MeanSquaredError(ReadOnlySpan<float> output, ReadOnlySpan<int> labels, Span<float> grad, int rows, int cols,
        int batchRows = 0)
    {
        double total = 0;
        float scale = 2f / ((batchRows > 0 ? batchRows : rows) * cols);
        for (int r = 0; r < rows; r++)
        {
            int label = labels[r];
            if (cols > 1 ? (uint)label >= (uint)cols : (uint)label > 1)
                throw new ArgumentException($"label {label} of sample {r} does not fit an output of {cols}");
            for (int c = 0; c < cols; c++)
            {
                float t = cols == 1 ? label : (c == label ? 1f : 0f);
                float d = output[r * cols + c] - t;
                total += (double)d * d;
                if (!grad.IsEmpty) grad[r * cols + c] = d * scale;
            }
        }
        return total / (rows * cols);
    }

    /// <summary>Number of rows whose prediction matches the label: arg-max for cols &gt; 1, score &gt;= threshold for one column.</summary>
    public static int CountCorrect(ReadOnlySpan<float> scores, ReadOnlySpan<int> labels, int rows, int cols, float threshold)
    {
        int correct = 0;
        for (int r = 0; r < rows; r++)
        {
            int predicted = cols == 1 ? (scores[r] >= threshold ? 1 : 0) : TensorPrimitives.IndexOfMax(scores.Slice(r * cols, cols));
            if (predicted == labels[r]) correct++;
        }
        return correct;
    }
}
