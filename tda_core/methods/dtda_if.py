"""d-TDA with the EK-FAC influence function on each seed's model (options as if_ekfac)."""
from .dtda import PerSeedSamples
from .if_ekfac import IfEkfac


class DtdaIf(PerSeedSamples):
    name = "dtda_if"
    base = IfEkfac
