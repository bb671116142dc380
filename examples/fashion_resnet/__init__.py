"""An example of a user's own package for scaling-optuna: a small ResNet, built by ``[model] builder``."""

__version__ = "0.1.0"
