"""Example handlers bundled for `taskstream dev` and the tests."""
