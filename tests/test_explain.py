"""--explain explains the prediction actually made: the stated probability is predict's, and
occlusion removes the model's own tokens, never text re-joined and tokenized again."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import review_texts, run_main
from hypothesis import given, settings

from imdb_sentiment import data, text
from imdb_sentiment.config import Config
from imdb_sentiment.explain import explain
from imdb_sentiment.files import UserError

# Contractions and markup: re-joined tokens ("film 's") tokenize differently from the review.
HARD_REVIEWS = [
    "The film's plot wasn't good, and I'd never watch it again. It's the director's worst.",
    "I didn't like it. You won't either: they'd've cut it, we're sure, y'all'll see... can't.",
    "'Wonderful' they said; it's 'superb' ''acting'' isn't it? O'Brien's cast's great's",
    "A <b>superb</b> film.<br /><br />I loved it &amp; you'll too!<i>Great</i>&quot;cast&quot;",
    "It wasn't &quot;bad&quot;<br/>but &lt;sigh&gt; it dragged &amp;lt;i&amp;gt; &#39;awful&#39;",
    "Naïve, 'Amélie'-like — boring… l'été “dull” ＡＷＦＵＬ\u00a0film\u2003 ",
    "",
]


@pytest.fixture(scope="module")
def predictor(trained):
    from imdb_sentiment.predict import Predictor

    return Predictor(trained["models"])


def assert_states_the_prediction(predictor, review):
    e = explain(predictor, review)
    assert e.probability == pytest.approx(predictor.predict([review])[0]["probability"], abs=1e-6)
    assert e.words == predictor.tokens(review)
    graph_tokens = text.tokenize([review.encode("utf-8", "replace")])[0].numpy()
    assert e.words == [t.decode() for t in graph_tokens]
    if e.words:  # the model's tokens, given as tokens, are the review: no second tokenization
        assert predictor.token_logits([e.words])[0] == pytest.approx(e.logit, abs=1e-6)
    return e


@pytest.mark.parametrize("review", HARD_REVIEWS)
def test_explanation_states_the_prediction_of_contraction_and_markup_reviews(predictor, review):
    assert_states_the_prediction(predictor, review)


@settings(max_examples=40, deadline=None)
@given(review_texts)
def test_explanation_states_the_prediction_for_any_text(predictor, review):
    assert_states_the_prediction(predictor, review)


def test_explanations_of_every_validation_review(trained, tiny_csv, predictor):
    cfg = Config.load(trained["run_dir"] / "config.json")
    reviews = data.load(tiny_csv, cfg).val.review.tolist()
    assert len(reviews) > 30 and all("<br />" in r for r in reviews)  # markup as IMDB has it
    predicted = [p["probability"] for p in predictor.predict(reviews)]
    stated = [explain(predictor, r).probability for r in reviews]
    np.testing.assert_allclose(stated, predicted, rtol=0, atol=1e-6)


def test_token_signature_gives_the_ids_of_the_raw_text(trained):
    loaded = tf.saved_model.load(str(trained["version"]))
    reviews = tf.constant(HARD_REVIEWS)
    tokens = loaded.signatures["tokens"](review=reviews)["tokens"]
    assert tokens.shape[0] == len(HARD_REVIEWS) and tokens.dtype == tf.string
    served = loaded.signatures["token_ids"](review=reviews)
    cfg = Config.load(trained["run_dir"] / "config.json")
    vectorizer = text.Vectorizer.from_config(text.load_vocabulary(trained["version"]), cfg)
    from_tokens = vectorizer.from_tokens(tokens)
    assert set(served) == set(from_tokens) == {"token_ids", "ngram_ids"}
    for name, ids in served.items():
        np.testing.assert_array_equal(ids.numpy(), from_tokens[name].numpy())
    from_tokens = loaded.signatures["token_logit"](tokens=tokens)["logit"].numpy()
    from_text = loaded.signatures["logit"](review=reviews)["logit"].numpy()
    np.testing.assert_allclose(from_tokens, from_text, rtol=0, atol=1e-6)


def test_long_review_explains_its_first_words_and_states_the_whole_prediction(predictor):
    words = (
        "the plot was wonderful and the cast superb , a moving story but the music awful "
        "and the ending dull , a pointless film"
    ).split()
    review = " ".join(words)
    e = explain(predictor, review, max_words=5)
    assert e.truncated and e.words == words[:5]
    assert e.probability == pytest.approx(predictor.predict([review])[0]["probability"], abs=1e-6)
    without = predictor.logits([" ".join(words[:i] + words[i + 1 :]) for i in range(5)])
    np.testing.assert_allclose(e.attributions, e.logit - without, rtol=0, atol=1e-5)


def test_an_export_without_the_token_signatures_is_refused_with_a_next_step(trained, tmp_path):
    from imdb_sentiment.predict import Predictor

    loaded = tf.saved_model.load(str(trained["version"]))
    old = tmp_path / "old" / "1"
    tf.saved_model.save(
        loaded,
        str(old),
        signatures={name: loaded.signatures[name] for name in ("serving_default", "logit")},
    )
    with pytest.raises(UserError, match="no 'tokens' signature.*export it again"):
        explain(Predictor(old), "good")
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    proc = run_main(main, "--model", old.parent, "--explain", "A wonderful film.")
    assert proc.returncode == 2 and "export it again" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_explain_shows_the_edited_words_carrying_the_flip_of_a_minimal_pair(predictor, tiny_pairs):
    from imdb_sentiment.counterfactuals import read_pairs

    pairs = read_pairs(tiny_pairs / "dev_paired.tsv")
    explained = 0
    for original, edit, label in zip(pairs.original, pairs.edit, pairs.label):
        e = explain(predictor, edit)
        if (e.logit >= 0) != (label == 0):
            continue  # the model misreads this edit: there is no flip to explain
        words = predictor.tokens(original)
        edited = {i for i, (a, b) in enumerate(zip(words, e.words)) if a != b}
        assert len(words) == len(e.words) and edited  # the tiny pairs swap words one for one
        towards_edit = 1 if label == 0 else -1
        # The word that pushes hardest towards the edit's label is an edited one, and the edited
        # words together push that way harder than the unchanged ones.
        push = towards_edit * e.attributions
        assert int(np.argmax(push)) in edited, (edit, e.top(3, towards_edit))
        kept = np.array([i not in edited for i in range(len(push))])
        assert push[~kept].sum() > max(push[kept].sum(), 0), (edit, e.top(5, towards_edit))
        explained += 1
    assert explained >= len(pairs) // 2
