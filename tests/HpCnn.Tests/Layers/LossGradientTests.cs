using HpCnn.Data;
using HpCnn.Kernels;
using HpCnn.Layers;
using HpCnn.Training;
using static HpCnn.Tests.Layers.GradientCheck;

namespace HpCnn.Tests.Layers;

/// <summary>
/// Finite-difference checks of every loss, with and without the head layer the loss fuses with. The model
/// path (TrainBatch's gradients against Evaluate's loss) checks the parameter gradients exactly as training
/// computes them; the plan path drives the loss kernels the same way to check the input gradient.
/// </summary>
public class LossGradientTests
{
    private const int Batch = 5;

    private static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData(LossKind.CrossEntropy, null, 4).SetArgDisplayNames("CrossEntropy_Logits");
        yield return new TestCaseData(LossKind.CrossEntropy, "softmax", 4).SetArgDisplayNames("CrossEntropy_SoftmaxHead");
        yield return new TestCaseData(LossKind.BinaryCrossEntropy, null, 1).SetArgDisplayNames("BinaryCrossEntropy_Logit");
        yield return new TestCaseData(LossKind.BinaryCrossEntropy, "sigmoid", 1).SetArgDisplayNames("BinaryCrossEntropy_SigmoidHead");
        yield return new TestCaseData(LossKind.MeanSquaredError, null, 1).SetArgDisplayNames("MeanSquaredError_OneOutput");
        yield return new TestCaseData(LossKind.MeanSquaredError, "sigmoid", 1).SetArgDisplayNames("MeanSquaredError_OneSigmoidOutput");
        yield return new TestCaseData(LossKind.MeanSquaredError, null, 4).SetArgDisplayNames("MeanSquaredError_FourOutputs");
        yield return new TestCaseData(LossKind.MeanSquaredError, "softmax", 4).SetArgDisplayNames("MeanSquaredError_SoftmaxHead");
    }

    private static Sequential Build(LossKind loss, string? head, int outputs)
    {
        var model = new Sequential(new Shape3(2, 3, 4), seed: 50)
            .Add(new Conv2D(3, (2, 3), (1, 2), Padding.Explicit(1, 0, 0, 1)))
            .Add(new Tanh())
            .Add(new Flatten())
            .Add(new Dense(outputs));
        if (head == "softmax") model.Add(new Softmax());
        if (head == "sigmoid") model.Add(new Sigmoid());
        return model.Compile(loss, new Sgd(0.1f));
    }

    private static (float[] Images, int[] Labels, Dataset Data) Batch5(Sequential model, int seed)
    {
        var rng = new Random(seed);
        var images = Uniform(rng, Batch * model.InputShape.Size, -1.5, 1.5);
        int classes = model.ClassCount;
        var labels = new int[Batch];
        for (int i = 0; i < Batch; i++) labels[i] = i % classes; // every class present
        rng.Shuffle(labels);
        return (images, labels, new Dataset((float[])images.Clone(), labels, model.InputShape, classes));
    }

    [TestCaseSource(nameof(Cases))]
    public void TrainBatchParameterGradients(LossKind loss, string? head, int outputs)
    {
        var model = Build(loss, head, outputs);
        var (images, labels, data) = Batch5(model, 60 + outputs);
        var parameters = TrainableParameters(model);
        var before = parameters.Select(p => (float[])p.Value.Clone()).ToList();

        double evalLoss = model.Evaluate(data, Batch).Loss;
        double trainLoss = model.TrainBatch(images, labels);
        Assert.That(trainLoss, Is.EqualTo(evalLoss).Within(1e-4).Percent, "training and evaluation compute the same loss");

        var analytic = parameters.Select(p => ToDouble(p.Grad)).ToList();
        for (int i = 0; i < parameters.Count; i++)
        {
            // The SGD step moved the weights by -lr * gradient.
            var p = parameters[i];
            for (int j = 0; j < p.Count; j++)
                Assert.That(p.Value[j], Is.EqualTo(before[i][j] - 0.1f * p.Grad[j]).Within(1e-6f), $"{p.Name}[{j}] after the step");
            p.Set(before[i]);
        }

        var rng = new Random(7);
        var grads = parameters.Select((p, i) =>
            Numeric(p.Name, p.Value, p, analytic[i], () => model.Evaluate(data, Batch).Loss, 1e-2, rng, int.MaxValue)).ToList();
        AssertMatch(grads);
    }

    [TestCaseSource(nameof(Cases))]
    public void InputGradientThroughTheLoss(LossKind loss, string? head, int outputs)
    {
        var model = Build(loss, head, outputs);
        var (images, labels, _) = Batch5(model, 70 + outputs);
        int n = model.Layers.Count, k = outputs;
        bool fused = (loss == LossKind.CrossEntropy && model.Layers[^1] is Softmax) || (loss == LossKind.BinaryCrossEntropy && model.Layers[^1] is Sigmoid);
        int at = fused ? n - 1 : n; // the loss reads the head's input when it fuses with it
        var plan = new ExecutionPlan(model, Batch, training: true, inputGradient: true);
        plan.SetBatch(Batch);
        var x = (float[])images.Clone();
        var probs = new float[Batch * k];

        double Loss(bool withGrad)
        {
            x.CopyTo(plan.Input);
            plan.Forward();
            var z = plan.Acts[at].Slice(0, Batch * k);
            var grad = withGrad ? plan.Grads[at].Slice(0, Batch * k) : default;
            return loss switch
            {
                LossKind.CrossEntropy => LossKernels.SoftmaxCrossEntropy(z, labels, probs, grad, Batch, k),
                LossKind.BinaryCrossEntropy => LossKernels.BinaryCrossEntropy(z, labels, probs, grad, Batch),
                _ => LossKernels.MeanSquaredError(z, labels, grad, Batch, k),
            };
        }

        Loss(withGrad: true);
        plan.Backward(at - 1);
        var analytic = ToDouble(plan.Grads[0].Slice(0, x.Length));
        var parameters = TrainableParameters(model);
        var paramGrads = parameters.Select(p => ToDouble(p.Grad)).ToList();
        var rng = new Random(8);
        var grads = new List<TensorGradients> { Numeric("input", x, null, analytic, () => Loss(false), 1e-2, rng, int.MaxValue) };
        for (int i = 0; i < parameters.Count; i++)
            grads.Add(Numeric(parameters[i].Name, parameters[i].Value, parameters[i], paramGrads[i], () => Loss(false), 1e-2, rng, int.MaxValue));
        AssertMatch(grads);
    }

    [Test]
    public void LossValuesByHand()
    {
        // Cross-entropy of logits [1, 2, 3], label 2: -log softmax = log(e + e^2 + e^3) - 3.
        var probs = new float[3];
        var grad = new float[3];
        double ce = LossKernels.SoftmaxCrossEntropy([1f, 2f, 3f], [2], probs, grad, 1, 3);
        Assert.That(ce, Is.EqualTo(Math.Log(Math.E + Math.Exp(2) + Math.Exp(3)) - 3).Within(1e-6));
        Assert.That(grad, Is.EqualTo(new[] { 0.09003057f, 0.24472847f, 0.66524096f - 1 }).Within(1e-6f));
        // Binary log-loss of logit 0 is log 2 for either label; of logit 2 with label 1 it is log(1 + e^-2).
        var p2 = new float[2];
        double bce = LossKernels.BinaryCrossEntropy([0f, 2f], [0, 1], p2, default, 2);
        Assert.That(bce, Is.EqualTo((Math.Log(2) + Math.Log(1 + Math.Exp(-2))) / 2).Within(1e-6));
        Assert.That(p2[0], Is.EqualTo(0.5f));
        // MSE against one-hot: outputs [0.5, 0.25] label 0 -> ((0.5 - 1)^2 + 0.25^2) / 2.
        double mse = LossKernels.MeanSquaredError([0.5f, 0.25f], [0], default, 1, 2);
        Assert.That(mse, Is.EqualTo((0.25 + 0.0625) / 2).Within(1e-7));
    }
}
