"""One module per command of `imdb-sentiment` (cli.main); scripts/ holds thin wrappers."""
