"""Renderers: a Report -> rich table, JSON, CSV or Markdown. They format; they never compute."""
