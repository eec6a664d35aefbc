"""The benchmark harness of issue 5: ``python -m bench`` (see ``bench/run.py``)."""
