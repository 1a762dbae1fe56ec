"""The pure core: models, state transitions, retry maths, priority turns, errors, settings.

Nothing in this package performs I/O; `tests/test_architecture.py` checks it imports no
network library.
"""
