"""IMDB review sentiment: frozen GloVe + LSTM in Keras, exported as a TF Serving SavedModel.

    from imdb_sentiment import fit, evaluate_model
    run = fit("reviews.csv", {"epochs": 2}, run_dir="runs/try", export_dir="models/try")

`fit`, `evaluate_model`, `Run` and `Results` load TensorFlow when first used, not on import, so
the commands' --help stays fast.
"""

__version__ = "0.1.0"
__all__ = ["Results", "Run", "evaluate_model", "fit"]

_LAZY = {"fit": "pipeline", "evaluate_model": "pipeline", "Run": "pipeline", "Results": "results"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
