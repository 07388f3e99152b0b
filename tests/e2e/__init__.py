"""End-to-end tests: the daemon as a subprocess (the `daemon` fixture of
tests/conftest.py, built by tests/harness/process.py) and real receivers.

Every test gets its own config, database and free port in `tmp_path`. Periods
are seconds long, so the tests wait for real deadlines; they wait by polling a
condition (`wait_for`), never by sleeping a fixed time. The daemon's stderr is
written to a file and printed at teardown, which pytest shows only when a test
failed.
"""
