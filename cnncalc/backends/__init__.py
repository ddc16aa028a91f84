"""Array back-ends: forward-pass reference implementations of CNN layers."""
