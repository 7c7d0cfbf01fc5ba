"""Mutation testing of the money code (`make mutants`, docs/mutation-testing.md).

plan.py, killers.py and report.py are plain Python (the tooling's tests import them in the dev venv);
campaign.py drives cosmic-ray and runs in cosmic-ray's own venv (.tools/cosmic-ray)."""
