"""Command-line tools: the ``convpool`` command (cli) and the benchmark against PyTorch (bench)."""
