"""The benchmark: the app's hot paths beside reference Flask apps, under gunicorn and wrk.

Run `python -m bench.run` from the project root (or `make bench` in the template); see
bench/README.md for what each row means.
"""
