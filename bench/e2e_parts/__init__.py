"""The parts of `bench/e2e.py`, one concern per module; `e2e.py` parses options and runs them.

* `console`: progress lines on stderr and the error that ends a run.
* `config`: the run's options (`Config`), their `--quick` sizes, the task types it submits.
* `environment`: machine, package and server versions, settings, recorded with the numbers.
* `servers`: Redis and PostgreSQL (private, or given), this run's database and key prefix.
* `processes`: the `taskstream` processes, their logs, and stopping them.
* `stack`: the deployment the phases work against; the worker started and stopped by phases.
* `clients`, `submit`: HTTP clients (httpx, and a raw one for paced loads), batch submission.
* `stats`: latencies from PostgreSQL's timestamps, client-side quantiles, backlog counts.
* `cpu`: CPU accounting from /proc, Redis `INFO cpu` and `pg_stat_activity`.
* `benchapp`: the peers' task body as a taskstream task (loaded by the workers).
* phases: `drain`, `sustained`, `latency` (pickup), `http_submit`, `memory`, `large_tables`,
  `peers`.
* `run`: start the stack, then each chosen phase; `summary`: figures against targets and
  peers; `report`: the printed tables.
"""
