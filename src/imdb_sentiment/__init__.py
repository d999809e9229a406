"""IMDB review sentiment: frozen GloVe + LSTM in Keras, exported as a TF Serving SavedModel."""

__version__ = "0.1.0"
