"""`python -m mutation` (with `tests` on PYTHONPATH, in cosmic-ray's venv, as `make mutants` runs it)."""

from mutation.campaign import entry

entry()
