"""Text as token sequences for language models (kind: language_model). See docs/data.md, "Text".

    dataset: {name: text, path: corpus.txt, format: lines, seq_len: 32, tokenizer: char}
    dataset: {name: lee_corpus, seq_len: 32}     # the Lee background corpus shipped inside gensim

A document (one per line with `format: lines`; the whole file with `format: plain`) becomes token ids,
cut into windows of seq_len + 1 tokens that overlap by one (every token after a document's first is
the target of exactly one window). A window is one training example: x = its first seq_len tokens,
y = its last seq_len (the inputs shifted by one). A document's last window is right-padded: the pad
id in x, IGNORE_INDEX in y, so padding enters no loss (tda_core.tasks.LanguageModelTask).

Tokenizers: `char` (a character vocabulary built from the training pool: id 0 is the padding, id 1
an unknown character, then the pool's characters in code-point order), or a Hugging Face tokenizer
folder loaded offline with transformers.AutoTokenizer.from_pretrained(dir, local_files_only=True)
(its pad token is the pad id; without one, an extra id after its vocabulary).

Numpy only, except for the transformers import a tokenizer folder needs (plan-time checks of `char`
sources run in the Snakemake process).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .paths import data_path

IGNORE_INDEX = -100  # tda_core.tasks.IGNORE_INDEX (not imported: that module imports torch)
FORMATS = ("lines", "plain")
# The Lee background corpus: 300 news documents, one per line, inside the gensim wheel (LGPL-2.1).
LEE_PACKAGE, LEE_FILE = "gensim", ("test", "test_data", "lee_background.cor")


def corpus_path(ds: dict, data_dir: str) -> Path:
    """The corpus file: dataset.path (absolute or under data_dir), or lee_corpus's file inside gensim."""
    if ds["name"] == "lee_corpus":
        spec = importlib.util.find_spec(LEE_PACKAGE)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("dataset lee_corpus reads a file shipped inside the gensim package: pip install gensim")
        p = Path(spec.submodule_search_locations[0], *LEE_FILE)
        if not p.is_file():
            raise ConfigError(f"dataset lee_corpus: {p} is missing from the installed gensim")
        return p
    return data_path(ds, data_dir)


def heldout_path(ds: dict, data_dir: str) -> Path | None:
    if not ds.get("heldout_path"):
        return None
    return data_path({"name": ds["name"], "path": ds["heldout_path"]}, data_dir)


def tokenizer_dir(ds: dict, data_dir: str) -> Path | None:
    """The tokenizer folder (absolute or under data_dir), or None for the character tokenizer."""
    name = ds.get("tokenizer", "char")
    if name == "char":
        return None
    p = Path(name).expanduser()
    p = p if p.is_absolute() else Path(data_dir) / p
    if not p.is_dir():
        raise ConfigError(f"dataset {ds['name']}: tokenizer '{name}' is neither 'char' nor a folder ({p} is none)")
    return p


def read_documents(path: Path, fmt: str) -> list[str]:
    """The documents of a text file: its non-blank lines (`lines`) or the whole text (`plain`)."""
    if fmt not in FORMATS:
        raise ConfigError(f"{path}: unknown text format '{fmt}' (use {' or '.join(FORMATS)})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a text file") from None
    if fmt == "plain":
        return [text] if text.strip() else []
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


class CharTokenizer:
    """Characters to ids: 0 = padding, 1 = unknown, then the vocabulary's characters in code-point order."""

    PAD, UNK = 0, 1

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self._ids = {c: i + 2 for i, c in enumerate(self.chars)}
        self.pad_id = self.PAD

    @classmethod
    def from_documents(cls, documents: list[str]) -> "CharTokenizer":
        return cls(set().union(*map(set, documents)) if documents else ())

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 2

    def encode(self, document: str) -> list[int]:
        return [self._ids.get(c, self.UNK) for c in document]

    def decode(self, ids) -> str:
        return "".join(self.chars[i - 2] if i >= 2 else "" for i in ids)


class HFTokenizer:
    """A transformers tokenizer folder, loaded offline; documents encoded without special tokens."""

    def __init__(self, folder: Path):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ConfigError("a tokenizer folder needs the transformers package: pip install transformers") from None
        try:
            self.tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any unloadable folder is one line
            msg = (str(e).strip().splitlines() or [""])[0]
            raise ConfigError(f"tokenizer {folder} does not load with transformers.AutoTokenizer "
                              f"(local files only): {type(e).__name__}: {msg}") from None
        n = len(self.tok)
        pad = self.tok.pad_token_id
        self.pad_id = int(pad) if pad is not None else n  # a reserved extra id when the tokenizer has no pad token
        self.vocab_size = max(n, self.pad_id + 1)

    def encode(self, document: str) -> list[int]:
        return list(self.tok(document, add_special_tokens=False)["input_ids"])

    def decode(self, ids) -> str:
        return self.tok.decode([i for i in ids if i != self.pad_id])


def windows(documents_ids: list[list[int]], seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) int64 [n, seq_len]: each document's windows of seq_len + 1 tokens at stride seq_len, the
    last one right-padded (x: pad_id, y: IGNORE_INDEX); documents of one token give none."""
    xs, ys = [], []
    for ids in documents_ids:
        for start in range(0, max(len(ids) - 1, 0), seq_len):
            w = ids[start : start + seq_len + 1]
            x = np.full(seq_len, pad_id, dtype=np.int64)
            y = np.full(seq_len, IGNORE_INDEX, dtype=np.int64)
            x[: len(w) - 1] = w[:-1]
            y[: len(w) - 1] = w[1:]
            xs.append(x)
            ys.append(y)
    if not xs:
        return np.zeros((0, seq_len), np.int64), np.zeros((0, seq_len), np.int64)
    return np.stack(xs), np.stack(ys)


@dataclass
class TextPools:
    train: tuple[np.ndarray, np.ndarray]  # (x, y) int64 [n, seq_len]
    heldout: tuple[np.ndarray, np.ndarray] | None
    vocab_size: int  # the model's outputs
    pad_id: int
    origin: str


def load_text(ds: dict, data_dir: str, tokenizer=None) -> TextPools:
    """The training pool (and the held-out pool of dataset.heldout_path) as token windows."""
    path = corpus_path(ds, data_dir)
    fmt, seq_len = ds.get("format", "lines"), int(ds.get("seq_len", 32))
    docs = read_documents(path, fmt)
    if not docs:
        raise ConfigError(f"{path}: empty corpus (no non-blank {'line' if fmt == 'lines' else 'text'})")
    held_path = heldout_path(ds, data_dir)
    held_docs = read_documents(held_path, fmt) if held_path is not None else None
    if held_docs is not None and not held_docs:
        raise ConfigError(f"{held_path}: empty corpus (no non-blank {'line' if fmt == 'lines' else 'text'})")
    if tokenizer is None:
        folder = tokenizer_dir(ds, data_dir)
        tokenizer = HFTokenizer(folder) if folder is not None else CharTokenizer.from_documents(docs)
    train = windows([tokenizer.encode(d) for d in docs], seq_len, tokenizer.pad_id)
    if not len(train[0]):
        raise ConfigError(f"{path}: no sequence of two or more tokens (every document is a single token)")
    held = windows([tokenizer.encode(d) for d in held_docs], seq_len, tokenizer.pad_id) if held_docs else None
    if held is not None and not len(held[0]):
        raise ConfigError(f"{held_path}: no sequence of two or more tokens")
    return TextPools(train, held, tokenizer.vocab_size, tokenizer.pad_id, str(path))


def text_summary(ds: dict, data_dir: str) -> dict | None:
    """check_plan's summary of a text source: with the character tokenizer, read and cut into windows
    (fast: numpy and a pass over the text); a tokenizer folder (importing transformers takes seconds)
    is checked at `prepare` (None)."""
    if tokenizer_dir(ds, data_dir) is not None:
        return None
    pools = load_text(ds, data_dir)
    return {"origin": pools.origin, "n_pool": len(pools.train[0]),
            "n_heldout": len(pools.heldout[0]) if pools.heldout is not None else None,
            "in_shape": (int(ds.get("seq_len", 32)),), "n_out": pools.vocab_size, "unit": "sequences"}


def text_files(ds: dict, data_dir: str) -> list[Path]:
    """The files whose content identifies a text dataset: the corpus, the held-out file, the tokenizer folder's files."""
    files = [corpus_path(ds, data_dir)]
    held = heldout_path(ds, data_dir)
    if held is not None:
        files.append(held)
    folder = tokenizer_dir(ds, data_dir)
    if folder is not None:
        files += sorted(f for f in folder.rglob("*") if f.is_file())
    return files
