"""tda_core/scores.py: every seed usage's files load as [R, Q, N] (small fake score files)."""
from __future__ import annotations

import numpy as np
import pytest

from tda_core import io
from tda_core.errors import ArtifactError
from tda_core.layout import score_files
from tda_core.scores import Scores, load_scores

R, Q, N = 3, 4, 5
HASH = "abc"


def _write(folder, method, target, usage, arrays, status="ok"):
    files = score_files(str(folder), method, target, usage, R)
    assert len(files) == len(arrays)
    for f, a in zip(files, arrays):
        io.save_npy(f.path(".npy"), a.astype(np.float32))
        io.write_json(f.path(".json"), {"config_hash": HASH, "method": method, "status": status, "seeds": [0],
                                        **({"reason": "TdaError: boom"} if status != "ok" else {})})
    return files


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_per_seed_files_stack_in_seed_order(tmp_path, rng):
    arrays = [rng.standard_normal((Q, N)) for _ in range(R)]
    s = load_scores(_write(tmp_path, "m", "query", "per_seed", arrays), "per_seed", HASH)
    assert s.ok and s.array.shape == (R, Q, N)
    for r in range(R):
        np.testing.assert_array_equal(s.array[r], arrays[r].astype(np.float32))
    assert len(s.seed_arrays()) == R and len(s.prediction_rows()) == R and s.structure == "per_seed"
    for r in range(R):  # seed arrays in float64, prediction rows as the files hold them
        assert s.seed_arrays()[r].dtype == np.float64 and s.prediction_rows()[r].dtype == np.float32
        np.testing.assert_array_equal(s.seed_arrays()[r], arrays[r].astype(np.float32))
        np.testing.assert_array_equal(s.prediction_rows()[r], arrays[r].astype(np.float32))


def test_pooled_file_is_one_seed_row(tmp_path, rng):
    a = rng.standard_normal((Q, N))
    s = load_scores(_write(tmp_path, "m", "val", "pooled", [a]), "pooled", HASH)
    assert s.array.shape == (1, Q, N) and s.structure == "one"
    np.testing.assert_array_equal(s.seed_arrays()[0], a.astype(np.float32))
    assert len(s.seed_arrays()) == 1 and len(s.prediction_rows()) == 1
    np.testing.assert_array_equal(s.prediction_rows()[0], a.astype(np.float32))


def test_per_seed_samples_file_is_r_seed_rows(tmp_path, rng):
    a = rng.standard_normal((R, Q, N))
    s = load_scores(_write(tmp_path, "m", "query", "per_seed_samples", [a]), "per_seed_samples", HASH)
    assert s.array.shape == (R, Q, N) and s.structure == "samples"
    np.testing.assert_array_equal(np.stack(s.seed_arrays()), a.astype(np.float32))
    # the additive prediction reads the seed-averaged scores of a samples file
    assert len(s.prediction_rows()) == 1
    np.testing.assert_allclose(s.prediction_rows()[0], a.astype(np.float32).mean(axis=0), rtol=1e-6)


def test_one_per_seed_file_is_single_and_from_arrays_matches_the_files(tmp_path, rng):
    a = rng.standard_normal((Q, N)).astype(np.float32)
    s = Scores.from_arrays([a])
    assert s.usage == "per_seed" and s.structure == "one" and s.array.shape == (1, Q, N)
    arrays = [rng.standard_normal((Q, N)) for _ in range(R)]
    loaded = load_scores(_write(tmp_path, "m", "query", "per_seed", arrays), "per_seed", HASH)
    built = Scores.from_arrays([x.astype(np.float32) for x in arrays], method="m")
    np.testing.assert_array_equal(built.array, loaded.array)
    assert (built.usage, built.structure) == (loaded.usage, loaded.structure)
    # a bare array is one file: [R, Q, N] for samples, refused for per_seed (whose files are [Q, N])
    assert Scores.from_arrays(loaded.array, "per_seed_samples").structure == "samples"
    with pytest.raises(ArtifactError, match="per_seed scores must be"):
        Scores.from_arrays(loaded.array, "per_seed")
    with pytest.raises(ValueError, match="seed usage"):
        Scores.from_arrays([a], "ensemble")


def test_wrong_shape_for_the_usage_names_the_file(tmp_path, rng):
    files = _write(tmp_path, "m", "query", "pooled", [rng.standard_normal((R, Q, N))])
    with pytest.raises(ArtifactError, match="seedall.npy: pooled scores must be \\[Q, N\\]"):
        load_scores(files, "pooled", HASH)


def test_a_failed_sidecar_fails_the_method_without_reading_arrays(tmp_path, rng):
    files = _write(tmp_path, "m", "query", "per_seed", [rng.standard_normal((Q, N)) for _ in range(R)])
    io.write_json(files[1].path(".json"), {"config_hash": HASH, "method": "m", "status": "failed", "reason": "OOM"})
    (tmp_path / "seed2.npy").unlink()
    s = load_scores(files, "per_seed", HASH)
    assert not s.ok and s.array is None and s.failed_reason == "OOM"


def test_scores_of_another_config_are_refused(tmp_path, rng):
    files = _write(tmp_path, "m", "query", "pooled", [rng.standard_normal((Q, N))])
    with pytest.raises(Exception, match="m"):
        load_scores(files, "pooled", "another-hash")
