"""SOURCE scores averaged over the R models trained on the full data with different seeds."""
from .source import Source


class SourceEnsemble(Source):
    name = "source_ensemble"
    # registry row seeds="pooled": ctx.seeds = all full-data seeds; Source.score averages over them
