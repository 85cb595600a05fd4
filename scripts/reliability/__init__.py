"""Load and soak runs against a real `model-compose up` (issue 7, items 3
and 5): `scripts/load` and `scripts/soak`, and the CI test that runs small
versions of both (tests/test_reliability.py)."""
