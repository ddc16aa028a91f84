"""Writing a spec as code for a framework: `cnncalc export SPEC --to pytorch` (``pytorch.py``).

The exporters walk the engine's plan (one step per report row) and ask each step's layer kind how
it is written (``Layer.pytorch``); they never switch on kind names, so a new kind brings its own
code with it.
"""
