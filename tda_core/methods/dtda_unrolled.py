"""d-TDA with exact unrolled differentiation of each seed's training run (small models only;
options as unrolled)."""
from .dtda import PerSeedSamples
from .unrolled import Unrolled


class DtdaUnrolled(PerSeedSamples):
    name = "dtda_unrolled"
    base = Unrolled
    stage_aware = Unrolled.stage_aware
    max_params = Unrolled.max_params
