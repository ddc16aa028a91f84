"""Reading and validating layer specs: file -> python data with a source map -> pydantic models."""
