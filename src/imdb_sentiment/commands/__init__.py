"""One module per command of `imdb-sentiment` (cli.main); scripts/ holds thin wrappers.

A command imports the library inside its main, after parsing its arguments: `--help` and a
mistyped flag answer at once instead of after TensorFlow's few seconds of loading.
"""
