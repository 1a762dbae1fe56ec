"""Maintenance services run by `taskstream scheduler`. The promoter (due delayed tasks and
retries), the relay (rows never published) and the rescuer (leases that ran out) are safe on
every instance: each batch is taken with FOR UPDATE SKIP LOCKED."""
