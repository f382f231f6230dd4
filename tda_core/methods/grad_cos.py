"""Cosine of query and train gradients: grad_dot with each gradient normalised."""
import torch.nn.functional as F

from .grad_dot import GradDot


class GradCos(GradDot):
    name = "grad_cos"

    @staticmethod
    def combine(v, g):
        return -(F.normalize(v, dim=1) @ F.normalize(g, dim=1).T)
