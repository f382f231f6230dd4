"""Language models (kind: language_model) on text (tda_core/data/text.py, tda_core/tasks.py LanguageModelTask,
tda_core/models/gpt.py): token windows and padding written out by hand, a tokenizer folder built here with
the `tokenizers` library (no downloads), the task's loss against transformers' own GPT2LMHeadModel(labels=...)
loss and F.cross_entropy(ignore_index=-100), padding that changes no gradient, the per-token measurement, the
one-line errors, and a tiny experiment through every stage (train, ground truth, attribute, evaluate)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tda_core.api import load_experiment
from tda_core.config import check_plan, resolve_experiment, validate_config
from tda_core.data.text import CharTokenizer, windows
from tda_core.errors import ConfigError
from tda_core.gradients import per_example_grads
from tda_core.tasks import IGNORE_INDEX, LanguageModelTask

NONE = {"mode": "none"}
DOCS = ["the cat sat on the mat", "a dog", "x", "", "   ", "the end of the story is near"]


def _config(tmp_path, dataset, **exp):
    ds = {"n_train": 6, "n_val": 1, "n_query": 2, "n_test": 1, **dataset}
    e = {"kind": "language_model", "dataset": ds, "model": {"name": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8,
                                                             "n_positions": ds.get("seq_len", 32)},
         "train": {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.0, "batch_size": 4, "epochs": 2,
                   "n_checkpoints": 2},
         "seeds": 1, "groundtruth": {"n_subsets": 8, "seeds_per_subset": 2, "shard_size": 8},
         "methods": ["random", "grad_dot"], **exp}
    return {"tracking": NONE, "data_dir": str(tmp_path), "results_dir": str(tmp_path / "results"),
            "experiments": {"lm": e}}


def _exp(tmp_path, dataset, **exp):
    return load_experiment(_config(tmp_path, dataset, **exp), "lm")


def _corpus(tmp_path, docs=DOCS, name="corpus.txt"):
    (tmp_path / name).write_text("\n".join(docs) + "\n", encoding="utf-8")
    return name


def _expected_windows(ids, seq_len, pad):
    """Windows of seq_len + 1 tokens at stride seq_len, written out one position at a time."""
    out = []
    start = 0
    while start < len(ids) - 1:
        w = ids[start:start + seq_len + 1]
        x = [w[t] if t < len(w) - 1 else pad for t in range(seq_len)]
        y = [w[t + 1] if t + 1 < len(w) else IGNORE_INDEX for t in range(seq_len)]
        out.append((x, y))
        start += seq_len
    return out


# -- the source ---------------------------------------------------------------------------------
def test_lines_become_padded_windows_over_a_character_vocabulary(tmp_path):
    exp = _exp(tmp_path, {"name": "text", "path": _corpus(tmp_path), "seq_len": 5, "n_train": 8, "n_query": 2,
                          "n_val": 1, "n_test": 1})
    chars = sorted(set("".join(DOCS)))
    ids = {c: i + 2 for i, c in enumerate(chars)}  # 0 padding, 1 unknown, then code-point order
    expected = [w for d in DOCS if d.strip() for w in _expected_windows([ids[c] for c in d], 5, 0)]
    s = exp.splits
    got = torch.cat([torch.stack([a, b], 1) for a, b in ((s.train_x, s.train_y), (s.val_x, s.val_y),
                                                         (s.query_x, s.query_y), (s.test_x, s.test_y))])
    assert s.n_classes == len(chars) + 2 and s.train_x.dtype == s.train_y.dtype == torch.int64
    assert s.train_x.shape == (8, 5) and s.test_x.shape == (1, 5)
    # the splits keep whole sequences: together they are the hand-written windows, each once
    assert sorted(map(str, got.tolist())) == sorted(str([list(x), list(y)]) for x, y in expected)
    # "x" (one character) gives no window; "a dog" is one padded window
    a_dog = [ids[c] for c in "a dog"]
    assert [a_dog[:4] + [0], a_dog[1:] + [IGNORE_INDEX]] in got.tolist()


def test_plain_text_is_one_document_with_its_newlines(tmp_path):
    text = "ab\ncd\n\nef gh\nij kl mn op qr st uv"  # 33 characters: windows start at 0, 4, ..., 28
    (tmp_path / "p.txt").write_text(text)
    tok = CharTokenizer.from_documents([text])
    assert tok.chars == sorted(set(text)) and tok.vocab_size == len(set(text)) + 2
    want = _expected_windows(tok.encode(text), 4, 0)
    x, y = windows([tok.encode(text)], 4, tok.pad_id)
    assert len(text) == 33 and len(want) == 8 and x.tolist() == [w[0] for w in want] and y.tolist() == [w[1] for w in want]
    exp = _exp(tmp_path, {"name": "text", "path": "p.txt", "format": "plain", "seq_len": 4, "n_train": 4,
                          "n_val": 1, "n_query": 2, "n_test": 1})
    s = exp.splits
    got = torch.cat([s.train_x, s.val_x, s.query_x, s.test_x])
    assert sorted(got.tolist()) == sorted(x.tolist()) and s.n_classes == tok.vocab_size


def test_heldout_file_maps_unseen_characters_to_unknown(tmp_path):
    held = ["zzq ab!", "the cat q", "mat zz", "on a mat"]  # one window each
    exp = _exp(tmp_path, {"name": "text", "path": _corpus(tmp_path), "heldout_path": _corpus(tmp_path, held, "h.txt"),
                          "seq_len": 8, "n_train": 4, "n_val": 1, "n_query": 2, "n_test": None})
    s = exp.splits
    vocab = CharTokenizer.from_documents([d for d in DOCS if d.strip()])
    held = torch.cat([s.val_x, s.query_x, s.test_x, s.val_y, s.query_y, s.test_y])
    assert (held == CharTokenizer.UNK).sum() > 0  # z, q and ! are not in the training pool
    assert vocab.encode("zzq ab!")[:3] == [1, 1, 1] and s.n_classes == vocab.vocab_size


def test_a_local_tokenizer_folder_encodes_as_transformers_does(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "the": 1, "cat": 2, "sat": 3, "on": 4, "mat": 5, "a": 6, "dog": 7, "end": 8}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    docs = DOCS + ["the cat sat on a dog", "a mat on the cat"]
    ds = {"name": "text", "path": _corpus(tmp_path, docs), "tokenizer": "tok", "seq_len": 3, "n_train": 4, "n_val": 1,
          "n_query": 2, "n_test": None}
    exp = _exp(tmp_path, ds)
    s = exp.splits
    ref = AutoTokenizer.from_pretrained(str(tmp_path / "tok"), local_files_only=True)
    pad = len(ref)  # no pad token: one reserved id after the vocabulary
    expected = [w for d in docs if d.strip() for w in _expected_windows(ref(d, add_special_tokens=False)["input_ids"], 3, pad)]
    got = torch.cat([torch.stack([a, b], 1) for a, b in ((s.train_x, s.train_y), (s.val_x, s.val_y),
                                                         (s.query_x, s.query_y), (s.test_x, s.test_y))])
    assert sorted(map(str, got.tolist())) == sorted(str([list(x), list(y)]) for x, y in expected)
    assert s.n_classes == len(ref) + 1
    # the tokenizer's files enter the hash: another vocabulary, another experiment
    before = exp.hash
    vocab2 = {**vocab, "story": 9}
    tok2 = Tokenizer(models.WordLevel(vocab2, unk_token="[UNK]"))
    tok2.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok2, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    assert _exp(tmp_path, ds).hash != before


def test_text_errors_are_one_line(tmp_path):
    def err(dataset, **exp):
        with pytest.raises(ConfigError) as e:
            _exp(tmp_path, dataset, **exp).splits
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "nope.txt does not exist" in err({"name": "text", "path": "nope.txt"})
    (tmp_path / "empty.txt").write_text("\n  \n")
    assert "empty corpus" in err({"name": "text", "path": "empty.txt"})
    msg = err({"name": "text", "path": _corpus(tmp_path), "seq_len": 8, "n_train": 20})
    assert "sequences, splits need 24" in msg
    (tmp_path / "bad_tok").mkdir()
    (tmp_path / "bad_tok" / "tokenizer.json").write_text("{not json")
    assert "does not load with transformers.AutoTokenizer" in err({"name": "text", "path": "corpus.txt",
                                                                   "tokenizer": "bad_tok"})
    assert "neither 'char' nor a folder" in err({"name": "text", "path": "corpus.txt", "tokenizer": "no_such_dir"})
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    assert "not UTF-8" in err({"name": "text", "path": "latin1.txt"})


def test_plan_time_check_counts_sequences_and_builds_the_model(tmp_path):
    cfg = validate_config(_config(tmp_path, {"name": "text", "path": _corpus(tmp_path), "seq_len": 8, "n_train": 20}))
    n = sum(len(_expected_windows(list(d), 8, 0)) for d in DOCS if d.strip())
    assert n == 8
    with pytest.raises(ConfigError, match=rf"experiment 'lm': .*corpus.txt: {n} sequences, but the splits need 24"):
        check_plan(resolve_experiment(cfg, "lm"), build_model=False)
    cfg = validate_config(_config(tmp_path, {"name": "text", "path": "corpus.txt", "seq_len": 8, "n_train": 4,
                                             "n_query": 2, "n_val": 1, "n_test": 1}))
    spec = check_plan(resolve_experiment(cfg, "lm"), build_model=False)
    assert spec["in_shape"] == [8] and spec["n_out"] == len(set("".join(DOCS))) + 2
    from tda_core.models import build_model  # what check_models' child process runs on the spec

    assert build_model({"model": spec["model"]}, tuple(spec["in_shape"]), spec["n_out"], seed=0)(
        torch.zeros(1, 8, dtype=torch.long)).shape == (1, 8, spec["n_out"])
    with pytest.raises(ConfigError, match="exceed n_positions"):
        build_model({"model": {**spec["model"], "n_positions": 4}}, tuple(spec["in_shape"]), spec["n_out"], seed=0)


@pytest.mark.parametrize("change, message", [
    ({"kind": "classification"}, "needs kind: language_model"),
    ({"model": {"name": "mlp"}}, "needs model gpt2"),
    ({"measurement": "margin"}, "does not apply to kind: language_model"),
    ({"metrics": ["lds", "mislabel_auc"]}, "does not apply to kind: language_model"),
])
def test_language_model_config_mismatches_are_one_line(tmp_path, change, message):
    cfg = _config(tmp_path, {"name": "lee_corpus"}, **change)
    with pytest.raises(ConfigError, match=message) as e:
        validate_config(cfg)
    assert "\n" not in str(e.value)
    digits = _config(tmp_path, {"name": "digits"})
    with pytest.raises(ConfigError, match="needs a text dataset"):
        validate_config(digits)


def test_lee_corpus_is_read_from_the_gensim_package_without_importing_it(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    exp = _exp(tmp_path, {"name": "lee_corpus", "seq_len": 32, "n_train": 64, "n_val": 8, "n_query": 8, "n_test": 8})
    s = exp.splits
    path = Path(importlib.util.find_spec("gensim").submodule_search_locations[0], "test", "test_data",
                "lee_background.cor")
    lines = [ln for ln in path.read_text().split("\n") if ln.strip()]
    assert len(lines) == 300 and "gensim" not in sys.modules
    tok = CharTokenizer.from_documents(lines)
    assert s.n_classes == tok.vocab_size and s.train_x.shape == (64, 32)
    first = tok.encode(lines[0])[:33]
    x, y = windows([tok.encode(d) for d in lines], 32, 0)
    assert x[0].tolist() == first[:32] and y[0].tolist() == first[1:]
    assert len(x) > 10000  # ~11k windows of 33 characters


# -- the task: loss, padding, measurement ----------------------------------------------------------
def _tiny_gpt(vocab=11, seq_len=8, seed=0):
    from tda_core.models.gpt import build_gpt2

    torch.manual_seed(seed)
    return build_gpt2({"n_layer": 1, "n_head": 2, "n_embd": 8, "n_positions": seq_len + 1}, (seq_len,), vocab).eval()


def _batch(vocab=11, seq_len=8, lengths=(9, 5, 2), pad=0, seed=0):
    """Windows of `lengths` real tokens (+1 for the shift) as (full windows [B, T+1], x, y)."""
    g = torch.Generator().manual_seed(seed)
    full = torch.full((len(lengths), seq_len + 1), pad)
    for i, n in enumerate(lengths):
        full[i, :n] = torch.randint(1, vocab, (n,), generator=g)
    x = full[:, :-1].clone()
    y = full[:, 1:].clone()
    for i, n in enumerate(lengths):
        y[i, n - 1:] = IGNORE_INDEX
    return full, x, y


def test_task_loss_equals_transformers_gpt2_loss_and_cross_entropy_with_ignore_index():
    model = _tiny_gpt()
    full, x, y = _batch()
    task = LanguageModelTask()
    with torch.no_grad():
        ours = task.loss(model, x, y)
        logits = model(x)
        for i in range(len(x)):  # transformers shifts labels itself: give it the whole window, padding as -100
            labels = full[i : i + 1].clone()
            labels[0, (y[i] == IGNORE_INDEX).nonzero().flatten() + 1] = IGNORE_INDEX
            hf = model.lm(input_ids=full[i : i + 1], labels=labels, use_cache=False).loss
            ce = F.cross_entropy(logits[i], y[i], ignore_index=IGNORE_INDEX)
            assert float(ours[i]) == pytest.approx(float(hf), rel=1e-5) == pytest.approx(float(ce), rel=1e-5)


def test_padding_changes_no_loss_and_no_gradient():
    """The same sequences with 5 more padded positions (and other pad ids): identical per-example gradients."""
    model = _tiny_gpt(seq_len=13)  # context 14: takes both lengths
    _, x, y = _batch()
    pad_x = torch.cat([x, torch.randint(0, 11, (len(x), 5), generator=torch.Generator().manual_seed(1))], 1)
    pad_y = torch.cat([y, torch.full((len(y), 5), IGNORE_INDEX)], 1)
    x_noise = x.clone()
    x_noise[y == IGNORE_INDEX] = 7  # another pad input id at the padded positions
    task = LanguageModelTask()
    params = {k: v.detach() for k, v in model.named_parameters()}
    g = per_example_grads(model, params, task.attribution_loss, x, y)
    g_long = per_example_grads(model, params, task.attribution_loss, pad_x, pad_y)
    g_noise = per_example_grads(model, params, task.attribution_loss, x_noise, y)
    with torch.no_grad():
        torch.testing.assert_close(task.loss(model, pad_x, pad_y), task.loss(model, x, y))
    torch.testing.assert_close(g_long, g, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g_noise, g, rtol=1e-5, atol=1e-7)
    assert g.abs().sum() > 0


def test_last_token_loss_is_the_cross_entropy_of_the_last_real_token():
    model = _tiny_gpt()
    _, x, y = _batch(lengths=(9, 5, 2))
    with torch.no_grad():
        got = LanguageModelTask("last_token_loss").measure(model, x, y)
        logits = model(x)
    for i, last in enumerate((7, 3, 0)):  # 9, 5, 2 real tokens -> 8, 4, 1 targets
        want = F.cross_entropy(logits[i, last], y[i, last])
        assert float(got[i]) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(ConfigError, match="does not apply to language models"):
        LanguageModelTask("margin")


# -- through the stages ---------------------------------------------------------------------------
def test_a_tiny_language_model_runs_train_groundtruth_attribute_evaluate(tmp_path):
    from tda_core import io
    from tda_core.stages.attribute import attribute_method
    from tda_core.stages.evaluate import evaluate_experiment
    from tda_core.stages.groundtruth import gather
    from tda_core.stages.prepare import prepare
    from tda_core.stages.train import train_full, train_shard

    docs = [" ".join(["the cat sat on the mat", "a dog ran", "the end"][i % 3] for _ in range(1 + i % 4))
            for i in range(30)]
    exp = _exp(tmp_path, {"name": "text", "path": _corpus(tmp_path, docs), "seq_len": 12, "n_train": 16,
                          "n_val": 2, "n_query": 4, "n_test": 8},
               methods=["random", "grad_dot", "trak"], seeds=2,
               train={"optimizer": "adam", "lr": 0.02, "weight_decay": 0.0, "batch_size": 8, "epochs": 4,
                      "n_checkpoints": 2})
    gt = tmp_path / "gt"
    prepare(exp, gt / "config.json", gt / "masks.npy")
    metas = [train_full(exp, r, exp.model_path(r), NONE) for r in range(2)]
    for m in metas:  # next-token accuracy over real tokens; the perplexity is exp of the loss per token
        assert 0 < m["test_accuracy"] <= 1 and np.exp(m["test_loss"]) == pytest.approx(m["test_perplexity"])
    train_shard(exp, 0, gt / "masks.npy", gt / "shard0.npz", NONE)
    gather(exp, gt / "masks.npy", [gt / "shard0.npz"], [exp.model_path(r) for r in range(2)], gt / "measurements.npz")
    g, _ = io.load_npz(gt / "measurements.npz", expect_hash=exp.hash)
    assert g["subset"].shape == (8, 2, 4) and g["full"].shape == (2, 4)
    for method in ("random", "grad_dot", "trak"):
        seeds = ["all"] if method == "trak" else ["0", "1"]
        assert [m["status"] for m in attribute_method(exp, method, seeds, ["query"], {}, NONE)] == ["ok"] * len(seeds)
    assert np.load(exp.scores_path("grad_dot", 0)).shape == (4, 16)
    rows = evaluate_experiment(exp, ["lds"], ["random", "grad_dot", "trak"], None, gt / "measurements.npz",
                               tmp_path / "metrics.json", NONE)
    assert {r["method"] for r in rows if r["status"] == "ok"} == {"random", "grad_dot", "trak"}
    fit = io.read_json(tmp_path / "metrics.json")["model_fit"]
    s = exp.splits
    tokens = s.train_y[s.train_y != IGNORE_INDEX].numpy()
    test = s.test_y[s.test_y != IGNORE_INDEX].numpy()
    freq = (np.bincount(tokens, minlength=s.n_classes) + 1.0) / (len(tokens) + s.n_classes)
    assert fit["prior_loss"] == pytest.approx(float(-np.log(freq[test]).mean()))  # the unigram cross-entropy
    assert fit["kind"] == "language_model" and fit["did_not_learn"] == (fit["test_loss"] >= fit["prior_loss"])


def test_a_language_model_is_judged_by_its_loss_against_the_unigram_prior():
    from tda_core.model_fit import did_not_learn, label_prior

    # next-token accuracy under the most frequent token's rate, yet the loss beats the unigram prior: learned
    fit = {"kind": "language_model", "test_accuracy": 0.10, "chance_accuracy": 0.17, "test_loss": 2.5, "prior_loss": 3.0}
    assert did_not_learn(fit) is None
    assert did_not_learn({**fit, "test_loss": 3.1}) == "test loss 3.1 >= unigram loss 3"
    assert did_not_learn({**fit, "kind": "classification"}).startswith("test accuracy 0.100 < chance")
    # padding targets are no tokens; the vocabulary (n_classes) sets the smoothing even for unseen ids
    train = np.array([[1, 1, 2, IGNORE_INDEX]])
    test = np.array([[1, 3, IGNORE_INDEX, IGNORE_INDEX]])
    prior = label_prior("language_model", train, test, n_classes=5)
    freq = np.array([1, 3, 2, 1, 1]) / 8.0  # add-one counts over 5 ids, 3 real training tokens
    assert prior["prior_loss"] == pytest.approx(-(np.log(freq[1]) + np.log(freq[3])) / 2)
    assert prior["chance_accuracy"] == 0.5 and prior["prior_perplexity"] == pytest.approx(np.exp(prior["prior_loss"]))


@pytest.mark.slow
def test_the_workflow_plans_a_language_model_and_refuses_a_short_corpus_at_dry_run(repo, tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import planned_jobs

    docs = [" ".join(["the cat sat on the mat", "a dog ran", "the end"][i % 3] for _ in range(1 + i % 4))
            for i in range(30)]
    cfg = _config(tmp_path, {"name": "text", "path": _corpus(tmp_path, docs), "seq_len": 12, "n_train": 16,
                             "n_val": 2, "n_query": 4, "n_test": 8}, seeds=2, methods=["random", "grad_dot", "trak"])

    def dry_run(config):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
        return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory",
                               str(tmp_path), "--configfile", str(tmp_path / "c.yaml"), "--cores", "1", "-n"],
                              capture_output=True, text=True, timeout=300)

    r = dry_run(cfg)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert planned_jobs(r.stdout + r.stderr) == {"prepare": 1, "train_full": 2, "train_shard": 1, "gather_groundtruth": 1,
                                                 "attribute": 3, "evaluate": 1, "leaderboard": 1, "all": 1}
    cfg["experiments"]["lm"]["dataset"]["n_train"] = 400
    r = dry_run(cfg)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "tda-bench: experiment 'lm': " in out and "sequences, but the splits need 414" in out
    assert not (tmp_path / "results").exists()
