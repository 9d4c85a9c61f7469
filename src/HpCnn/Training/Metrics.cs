using HpCnn.Data;

namespace HpCnn.Training;

/// <summary>What one epoch of training measured.</summary>
/// <param name="Epoch">1-based epoch number within this Fit call.</param>
/// <param name="TrainLoss">mean of the batch losses over the epoch</param>
/// <param name="TrainAccuracy">accuracy of the training predictions made during the epoch (weights moving)</param>
/// <param name="ValLoss">validation loss after the epoch (null without validation data)</param>
/// <param name="ValAccuracy">validation accuracy after the epoch</param>
/// <param name="Seconds">wall time of the training loop of the epoch (validation excluded)</param>
/// <param name="SamplesPerSecond">training samples / Seconds</param>
/// <param name="LearningRate">learning rate used during the epoch</param>
/// <param name="ValidationSeconds">wall time of the validation pass</param>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double TrainAccuracy, double? ValLoss, double? ValAccuracy,
    double Seconds, double SamplesPerSecond, float LearningRate, double ValidationSeconds);

/// <summary>Progress inside an epoch, reported after every batch.</summary>
public readonly record struct BatchProgress(int Epoch, int Epochs, int Batch, int Batches, int SamplesDone, int Samples,
    double RunningLoss, double RunningAccuracy, double ElapsedSeconds);

/// <summary>The metrics of every completed epoch, and why training stopped.</summary>
public sealed class TrainingHistory
{
    public List<EpochMetrics> Epochs { get; } = [];
    /// <summary>Null when every requested epoch ran; otherwise "early stopping", "cancelled" or "stopped by callback".</summary>
    public string? StopReason { get; internal set; }
    /// <summary>Epoch (1-based) whose weights the model holds when early stopping restored the best ones.</summary>
    public int? RestoredEpoch { get; internal set; }
    /// <summary>The checkpoint this fit continued from (<see cref="FitOptions.Resume"/>), or null.</summary>
    public string? ResumedFrom { get; internal set; }
    /// <summary>Epochs at the start of <see cref="Epochs"/> that ran before the resume (restored from the checkpoint; their callbacks are not called again).</summary>
    public int ResumedEpochs { get; internal set; }
    /// <summary>The newest checkpoint this fit wrote, or null.</summary>
    public string? LastCheckpoint { get; internal set; }
    /// <summary>Checkpoints this fit wrote.</summary>
    public int CheckpointsWritten { get; internal set; }
    /// <summary>Processes the fit split its batches over (1: one process; see <see cref="FitOptions.Distributed"/>).</summary>
    public int Ranks { get; internal set; } = 1;
    /// <summary>Wall time this process spent in collectives with the other ranks (gradient sums, gathers, agreement), in seconds.</summary>
    public double CommunicationSeconds { get; internal set; }
}

/// <summary>Stops training when the monitored validation metric has not improved for <see cref="Patience"/> epochs.</summary>
public sealed record EarlyStopping(int Patience = 3, double MinDelta = 0, bool MonitorAccuracy = false, bool RestoreBestWeights = true);

/// <summary>Options of <see cref="Sequential.Fit"/>; the defaults are Keras'.</summary>
public sealed class FitOptions
{
    public int Epochs { get; set; } = 1;
    public int BatchSize { get; set; } = 32;
    public bool Shuffle { get; set; } = true;
    /// <summary>Validation data, checked after every epoch.</summary>
    public Dataset? Validation { get; set; }
    /// <summary>When no validation set is given: the fraction of the training data (taken from the end) held out.</summary>
    public double ValidationSplit { get; set; }
    /// <summary>Seed of the shuffling (default: the model seed).</summary>
    public ulong? Seed { get; set; }
    /// <summary>Threads (default: leave the engine setting).</summary>
    public int? Threads { get; set; }
    public EarlyStopping? EarlyStopping { get; set; }
    /// <summary>Called after every epoch.</summary>
    public Action<EpochMetrics>? OnEpochEnd { get; set; }
    /// <summary>Called after every batch; return false to stop training after this batch.</summary>
    public Func<BatchProgress, bool>? OnBatchEnd { get; set; }
    /// <summary>Stops training cleanly after the current batch.</summary>
    public CancellationToken Cancellation { get; set; }
    /// <summary>Batch size of the validation passes.</summary>
    public int EvaluationBatchSize { get; set; } = 256;

    /// <summary>
    /// Folder for crash-safe checkpoints (null: none). A checkpoint is a model file (docs/model-format.md) with the whole
    /// training state besides: optimizer state and step count, epochs trained (the schedule's position), the shuffling
    /// generator, the epoch's data order and position in it, early-stopping state and the metrics so far. One is written at
    /// the end of every epoch, when training is stopped or cancelled mid-epoch, and as often as
    /// <see cref="CheckpointEveryBatches"/> / <see cref="CheckpointInterval"/> say; each atomically and durably
    /// (<see cref="IO.AtomicFile"/>), as <c>checkpoint-NNNNNNNN.hpcnn</c>; the two newest are kept.
    /// </summary>
    public string? CheckpointDirectory { get; set; }
    /// <summary>Also write a checkpoint after every this many batches (0: only at epoch ends).</summary>
    public int CheckpointEveryBatches { get; set; }
    /// <summary>Also write a checkpoint when this much time has passed since the last one (null: no time-based checkpoints).</summary>
    public TimeSpan? CheckpointInterval { get; set; }
    /// <summary>
    /// Continue from the newest good checkpoint in <see cref="CheckpointDirectory"/> (a corrupt or partial one is reported
    /// through <see cref="OnMessage"/> and the one before it is used); with none there, train from the start. The model must
    /// have the checkpoint's architecture (build it the same way, or take <see cref="Checkpoint.Model"/>); its weights,
    /// optimizer state and epochs trained are replaced by the checkpoint's. The result is bit for bit the result of a run
    /// that was never interrupted, given the same data and options (batch size, shuffle, seed are checked).
    /// </summary>
    public bool Resume { get; set; }
    /// <summary>
    /// Before training, check every training and validation value is finite and report the first NaN or infinity by sample
    /// index (default on: one pass over the data, far less than one epoch, and otherwise a bad value only shows as a loss that
    /// "became NaN", which wrongly points at the learning rate). Labels outside the model's classes are always refused.
    /// </summary>
    public bool CheckData { get; set; } = true;
    /// <summary>Notices about checkpoints (a corrupt one skipped, a resume, none found); null writes them to standard error.</summary>
    public Action<string>? OnMessage { get; set; }

    /// <summary>
    /// Data-parallel training over the processes of an <c>mpirun</c> launch (docs/distributed.md): every process holds the
    /// data and the model, computes its share of every batch, and the gradients are summed so that the weights equal, bit for
    /// bit, one process's. <see cref="BatchSize"/> and the learning rate keep their one-process meaning. Rank 0 alone
    /// validates and writes checkpoints; every rank gets the same metrics and callbacks (print or save on rank 0 only:
    /// <see cref="global::HpCnn.Distributed.Mpi.Rank"/>). An error on one rank ends every rank. Null (default): distributed when launched
    /// with more than one process; true: require Open MPI; false: never.
    /// </summary>
    public bool? Distributed { get; set; }

    /// <summary>The processes to split batches over instead of MPI's (another transport, tests); overrides <see cref="Distributed"/>.</summary>
    public global::HpCnn.Distributed.ICommunicator? Communicator { get; set; }
}

/// <summary>Loss, accuracy and confusion matrix of a model on a dataset.</summary>
public sealed class Evaluation
{
    internal Evaluation(double loss, int correct, int count, int[,] confusion)
    {
        Loss = loss; Correct = correct; Count = count; Confusion = confusion;
    }

    public double Loss { get; }
    public int Correct { get; }
    public int Count { get; }
    public double Accuracy => Count == 0 ? 0 : (double)Correct / Count;
    /// <summary>Confusion[true, predicted] counts.</summary>
    public int[,] Confusion { get; }

    /// <summary>Accuracy per true class (NaN for a class with no samples).</summary>
    public double[] PerClassAccuracy()
    {
        int k = Confusion.GetLength(0);
        var acc = new double[k];
        for (int c = 0; c < k; c++)
        {
            long total = 0;
            for (int p = 0; p < k; p++) total += Confusion[c, p];
            acc[c] = total == 0 ? double.NaN : (double)Confusion[c, c] / total;
        }
        return acc;
    }
}

/// <summary>Predicted class probabilities (Count x Classes) and the most likely class of each sample.</summary>
public sealed record Prediction(float[] Probabilities, int[] Classes, int ClassCount)
{
    public int Count => Classes.Length;
    public ReadOnlySpan<float> ProbabilitiesOf(int sample) => Probabilities.AsSpan(sample * ClassCount, ClassCount);
}
