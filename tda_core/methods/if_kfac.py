"""Influence function with K-FAC curvature (eigenvalues eS eA^T of each layer's Kronecker factors)."""
from .influence import KroneckerIF


class IfKfac(KroneckerIF):
    name = "if_kfac"
    kind = "kfac"
