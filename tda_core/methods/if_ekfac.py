"""Influence function with EK-FAC curvature (K-FAC eigenbasis, eigenvalues re-fitted; Grosse et al. 2023)."""
from .influence import KroneckerIF


class IfEkfac(KroneckerIF):
    name = "if_ekfac"
    kind = "ekfac"
