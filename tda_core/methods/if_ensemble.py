"""EK-FAC influence averaged over the R models trained on the full data with different seeds."""
from .influence import KroneckerIF


class IfEnsemble(KroneckerIF):
    name = "if_ensemble"
    kind = "ekfac"
    # registry row seeds="pooled": ctx.seeds = all full-data seeds; KroneckerIF.score averages over them
