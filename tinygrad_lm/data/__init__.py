"""Host-side data pipeline: corpora -> tokenizers -> token files -> random batches.

>>> from tinygrad_lm.data import load_corpus, prepare_dataset
>>> ds = prepare_dataset(load_corpus("stdlib"), tokenizer="char")   # doctest: +SKIP
>>> x, y = ds.batcher("train", 4, 64, np.random.default_rng(0)).next_batch()  # doctest: +SKIP

Only NumPy is used here; the trainer wraps the int64 batches it gets into Tensors.
"""
from .batches import (Batcher, TokenDataset, dataset_key, prepare_corpus, prepare_dataset,
                      token_dtype)
from .corpora import (BUILTIN_CORPORA, DEFAULT_CORPUS, DataError, cache_dir, load_corpus,
                      read_text_file, shakespeare_corpus, stdlib_corpus)
from .gpt2_tokenizer import GPT2Tokenizer
from .tokenizers import (TOKENIZER_KINDS, BPETokenizer, CharTokenizer, Tokenizer,
                         UnknownCharacterError, make_tokenizer, tokenizer_from_dict)

__all__ = [
    "Batcher", "TokenDataset", "dataset_key", "prepare_corpus", "prepare_dataset",
    "token_dtype", "BUILTIN_CORPORA", "DEFAULT_CORPUS", "DataError", "cache_dir",
    "load_corpus", "read_text_file", "shakespeare_corpus", "stdlib_corpus", "GPT2Tokenizer",
    "TOKENIZER_KINDS",
    "BPETokenizer", "CharTokenizer", "Tokenizer", "UnknownCharacterError", "make_tokenizer",
    "tokenizer_from_dict",
]
