"""Optimizers and learning-rate schedules for :meth:`hpcnn.Sequential.compile`.

The update rules follow PyTorch (torch.optim.SGD and torch.optim.Adam, weight decay added to the gradient).

Example::

    model.compile(loss="cross_entropy", optimizer=hpcnn.optimizers.SGD(lr=0.01, momentum=0.9),
                  schedule=hpcnn.optimizers.StepSchedule(step_size=2, gamma=0.5))
"""

__all__ = ["SGD", "Adam", "StepSchedule", "CosineSchedule", "get"]


class SGD:
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay.

    Args:
        lr: learning rate (default 0.01).
        momentum: momentum factor in [0, 1) (default 0: plain SGD).
        nesterov: use Nesterov momentum.
        weight_decay: L2 penalty added to the gradient (default 0).
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr, self.momentum, self.nesterov, self.weight_decay = float(lr), float(momentum), bool(nesterov), float(weight_decay)

    def _compile(self, lib, handle, loss):
        return lib.hpcnn_model_compile_sgd(handle, loss, self.lr, self.momentum, int(self.nesterov), self.weight_decay)

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, weight_decay={self.weight_decay})"


class Adam:
    """Adam (Kingma & Ba), PyTorch semantics.

    Args:
        lr: learning rate (default 0.001).
        beta1, beta2: decay rates of the first and second moment estimates (0.9, 0.999).
        epsilon: added to the denominator (1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, weight_decay=0.0):
        self.lr, self.beta1, self.beta2 = float(lr), float(beta1), float(beta2)
        self.epsilon, self.weight_decay = float(epsilon), float(weight_decay)

    def _compile(self, lib, handle, loss):
        return lib.hpcnn_model_compile_adam(handle, loss, self.lr, self.beta1, self.beta2, self.epsilon, self.weight_decay)

    def __repr__(self):
        return f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, epsilon={self.epsilon}, weight_decay={self.weight_decay})"


class StepSchedule:
    """Multiplies the learning rate by ``gamma`` every ``step_size`` epochs (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, step_size, gamma=0.1):
        self.step_size, self.gamma = int(step_size), float(gamma)

    def _apply(self, lib, handle):
        return lib.hpcnn_model_set_step_schedule(handle, self.step_size, self.gamma)


class CosineSchedule:
    """Anneals the learning rate along a cosine from the base rate to ``min_factor`` x the base rate over
    ``epochs`` epochs (torch.optim.lr_scheduler.CosineAnnealingLR)."""

    def __init__(self, epochs, min_factor=0.0):
        self.epochs, self.min_factor = int(epochs), float(min_factor)

    def _apply(self, lib, handle):
        return lib.hpcnn_model_set_cosine_schedule(handle, self.epochs, self.min_factor)


def get(optimizer):
    """An optimizer object from an object or a name ("sgd", "adam"; with their default settings)."""
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name == "sgd":
            return SGD()
        if name == "adam":
            return Adam()
        raise ValueError(f"unknown optimizer {optimizer!r} (use 'sgd', 'adam', hpcnn.optimizers.SGD(...) or Adam(...))")
    if not hasattr(optimizer, "_compile"):
        raise TypeError(f"optimizer must be 'sgd', 'adam', hpcnn.optimizers.SGD(...) or Adam(...), got {optimizer!r}")
    return optimizer
