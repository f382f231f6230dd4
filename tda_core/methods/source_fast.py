"""SOURCE with the weights averaged within each segment (one EK-FAC fit and one gradient pass per
segment) instead of averaging the curvature statistics and gradients over its checkpoints."""
from .source import Source


class SourceFast(Source):
    name = "source_fast"
    fast = True
