"""The parts of `bench/e2e.py`, one concern per module; `e2e.py` parses options and runs them.

* `console`: progress lines on stderr and the error that ends a run.
* `config`: the run's options (`Config`) and the task it submits.
* `environment`: machine, package versions and inherited settings, recorded with the numbers.
* `servers`: Redis and PostgreSQL (given or private), this run's database and key prefix.
* `processes`: the `taskstream` processes, their logs, and stopping them.
* `clients`: HTTP clients (httpx, and the raw one phase 2 uses) and response shapes.
* `stats`: latencies from PostgreSQL's timestamps, and client-side quantiles.
* `cpu`: CPU accounting from /proc, Redis `INFO cpu` and `pg_stat_activity`.
* `throughput`, `latency`: phase 1 and phase 2.
* `run`: start the stack, warm up, run both phases under the CPU probe.
* `report`: the printed table.
"""
