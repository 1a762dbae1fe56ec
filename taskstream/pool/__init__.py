"""A pool of worker (or API) processes under one supervisor: ``policy`` decides (pure, `now` as
a parameter), ``status`` is what each child reports, ``arbiter`` runs the processes."""
