"""Workers: the handler registry, the executor (a handler call -> an Outcome) and the runner
that reads, claims, executes, completes and acks."""
