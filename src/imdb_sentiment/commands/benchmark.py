"""Speed of the default model on this machine, against the notebooks' way of doing the same work.

Prints, as medians of --repeats runs: training throughput (reviews/s and real tokens/s, padding not
counted) and the time of one full epoch; pretraining throughput (real tokens/s through both
language models, per objective); inference throughput of the exported SavedModel on raw
strings at batch sizes 1, 32 and 256, single-review latency (p50, p99), and on random batches of
256 against the same model padding each batch to its longest review (no sub-batches); FLOPs per
token, achieved GFLOP/s and the machine's own float32 matmul GFLOP/s; the notebooks' way (every
review padded to max_len and tokenized again each epoch; one review at a time through
BeautifulSoup, the tokenizer and model.predict) as ratios; peak memory. --json writes every
figure as one JSON object.

--phases RUN_DIR [RUN_DIR] measures nothing: it prints where finished runs' time went, from
their metrics.json (a run records its phases as it goes).

--export-precision measures only the serving speed of a GPU-trained model's two possible exports:
the float16 graph it was exported as before model.as_float32 (mixed_float16 policy), and float32.
"""

from pathlib import Path

from imdb_sentiment import cli


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phases:
        from imdb_sentiment.results import phase_table, read_phases

        print(phase_table({str(run): read_phases(run) for run in args.phases}))
        return 0
    cli.load_tensorflow()
    from imdb_sentiment import benchmark
    from imdb_sentiment.files import write_json

    b = benchmark.Bench.load(
        args.data,
        max_rows=args.max_rows,
        members=args.members,
        steps=args.steps,
        repeats=args.repeats,
    )
    if args.export_precision:
        figures = benchmark.measure_export_precision(b)
    else:
        figures = benchmark.measure(b, args.parity_epochs)
    print(figures.summary())
    if args.json:
        write_json(args.json, figures.to_dict())
    return 0


def parse_args(argv):
    p = cli.Parser(__doc__)
    p.add_argument("--data", help="same sources as train.py (default: found as train.py finds it)")
    p.add_argument(
        "--steps",
        type=int,
        default=40,
        help="measured training steps per repeat (default %(default)s)",
    )
    p.add_argument("--repeats", type=int, default=3, help="repeats per figure; medians are printed")
    p.add_argument(
        "--max-rows",
        type=int,
        help="use at most N rows of each split (a quick check, not a benchmark)",
    )
    p.add_argument(
        "--members",
        type=int,
        help="LSTM members of the measured model (default: the config's); 1 times one "
        "BiLSTM, the size PyTorch's peer (../shared/tools/peer_torch_lstm.py) runs",
    )
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument(
        "--phases",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="only print where finished runs' time went, phase by phase (seconds, share, "
        "rows/s), side by side; with two runs, the second's time over the first's",
    )
    p.add_argument(
        "--parity-epochs",
        type=int,
        default=0,
        help="also train the model both ways for N full epochs and compare validation accuracy "
        "(default off)",
    )
    p.add_argument(
        "--export-precision",
        action="store_true",
        help="only compare the float16 and float32 exports of one model on 256 test "
        "reviews (medians of --repeats alternating rounds)",
    )
    args = p.parse_args(argv)
    if args.members is not None and args.members < 1:
        p.error("--members must be 1 or more")
    return args
