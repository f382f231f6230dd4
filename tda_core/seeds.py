"""Every model seed of an experiment, allocated in one place so that no two roles share a seed.

A seed fixes a model's initialisation, batch order and task draws (tda_core.training). A model that
shares its seed with a scoring model (a full-data model whose attributions are evaluated) shares
their randomness, so it agrees with that model's scores more than an independently trained model
would: the evaluation is then partly in sample. The roles:

    scoring              0..R-1 (R = seeds): the full-data models the methods attribute
    groundtruth          GROUNDTRUTH_SEED_BASE + s, s = 0..seeds_per_subset-1: the subset models of the
                         distributional ground truth (lds, dlds_*), each subset trained from the same
                         seeds (common random numbers across subsets), none shared with a scoring model
    groundtruth_fixed    the fixed-seed track (groundtruth.track fixed_seed / both): subset S_j retrained
                         from every scoring seed r with r's initialisation and batch order. It shares
                         seeds with the scoring models on purpose: its target is "what would model r
                         have been without S_j's complement", the perturbation unrolling differentiates
    pruning_retrain      tda_core.pruning.retrain_seeds: R..R+S-1 (or a list)
    removal_retrain      tda_core.removal.retrain_seeds: the first free seeds >= R after pruning's (or a list)
    loo                  LOO_SEED_BASE + s, s = 0..loo.seeds-1: the leave-one-out study's full-data and
                         leave-one-out retrainings (seed s of both is shared: their difference is paired)

The studies' roles (the last three) come from their rows in tda_core/studies.py (`retrain_seeds`, `seed_role`): a
new study that retrains names its seed function there, and check_disjoint checks it like the others.

The ground-truth seeds sit at a fixed base (not after the retrain seeds) so that they depend only on
hashed settings: changing pruning or removal never changes the ground truth. GROUNDTRUTH_PROTOCOL
names the ground-truth seed protocol; rules/train.smk passes it (with the seeds) as a shard param, so
shards trained under an older protocol rerun, and gather refuses shards whose recorded seeds differ.
"""
from __future__ import annotations

from .errors import ConfigError
from .spec import ExperimentSpec, has_fixed_track
from .studies import STUDIES, study_seeds

GROUNDTRUTH_SEED_BASE = 1_000_000
# 1: subset seeds 0..K-1 (shared with the scoring models); 2: GROUNDTRUTH_SEED_BASE + 0..K-1 (disjoint)
GROUNDTRUTH_PROTOCOL = 2
LOO_SEED_BASE = 2_000_000
# 1: the LOO study retrained on seeds 0..S-1 (shared with the scoring models); 2: LOO_SEED_BASE + 0..S-1
LOO_PROTOCOL = 2


def scoring_seeds(cfg: dict) -> list[int]:
    return list(range(cfg["seeds"]))


def groundtruth_seeds(cfg: dict) -> list[int]:
    """The distributional track's subset-model seeds (disjoint from every scoring and retrain seed)."""
    return [GROUNDTRUTH_SEED_BASE + s for s in range(cfg["groundtruth"]["seeds_per_subset"])]


def fixed_track_seeds(cfg: dict) -> list[int]:
    """The fixed-seed track's seeds: the scoring seeds themselves (its protocol, see the module doc)."""
    return scoring_seeds(cfg)


def pruning_retrain_seeds(cfg: dict) -> list[int]:
    from .pruning import retrain_seeds

    spec = ExperimentSpec.of(cfg)
    pruning = spec.study("pruning")
    return retrain_seeds(spec.n_seeds, _listed(pruning["retrain_seeds"])) if pruning else []


def removal_retrain_seeds(cfg: dict) -> list[int]:
    from .removal import retrain_seeds

    spec = ExperimentSpec.of(cfg)
    removal = spec.study("removal")
    if not removal:
        return []
    return retrain_seeds(spec.n_seeds, _listed(removal["retrain_seeds"]), pruning_retrain_seeds(cfg))


def loo_seeds(cfg: dict) -> list[int]:
    """The leave-one-out study's retrain seeds (disjoint from the scoring models'; loo.seeds of them)."""
    loo = ExperimentSpec.of(cfg).study("loo")
    return [LOO_SEED_BASE + s for s in range(int(loo["seeds"]))] if loo else []


def _listed(seeds):
    """A retrain_seeds setting as the config holds it (a count, or a list: the spec keeps lists as tuples)."""
    return list(seeds) if isinstance(seeds, tuple) else seeds


def allocate(cfg: dict) -> dict[str, list[int]]:
    """{role: seeds} of an experiment (roles it does not have are left out)."""
    out = {"scoring": scoring_seeds(cfg), "groundtruth": groundtruth_seeds(cfg)}
    if has_fixed_track(cfg):
        out["groundtruth_fixed"] = fixed_track_seeds(cfg)
    for row in STUDIES.values():  # each study's retrain seeds (tda_core/studies.py), in the registry's order
        if row.retrain_seeds is not None and cfg.get(row.name):
            out[row.seed_role or row.name] = study_seeds(row, cfg)
    return out


def check_disjoint(name: str, cfg: dict) -> None:
    """ConfigError (one line) if two roles share a seed (the fixed-seed track excepted, by design)."""
    seeds = allocate(cfg)
    seeds.pop("groundtruth_fixed", None)
    roles = list(seeds)
    for i, a in enumerate(roles):
        for b in roles[i + 1:]:
            both = sorted(set(seeds[a]) & set(seeds[b]))
            if both:
                raise ConfigError(f"experiment '{name}': {a} seeds and {b} seeds share {both}; "
                                  f"every role trains on its own seeds (tda_core/seeds.py)")
