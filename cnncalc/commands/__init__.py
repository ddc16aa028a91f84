"""Click commands beyond `table`, one module per command family; cli.py registers them."""
