"""d-TDA with SOURCE on each seed's training run (options as source)."""
from .dtda import PerSeedSamples
from .source import Source


class DtdaSource(PerSeedSamples):
    name = "dtda_source"
    base = Source
    stage_aware = Source.stage_aware
