"""Benchmarks that print figures against the targets of issue 7; `make bench` runs them.

Never imported by the app or the tests: a test asserts behaviour, a benchmark reports numbers.
"""
