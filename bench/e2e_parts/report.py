"""The printed report: what the numbers belong to (machine, versions, servers, options), one
section per phase, then the summary against issue 5's targets and the peers, then shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict) and value:
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value)


def section(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    if not rows:
        return []
    width = max(len(k) for k, _ in rows)
    return [title, *(f"  {k:<{width}}  {fmt(v)}" for k, v in rows), ""]


def grid(title: str, columns: list[str], rows: list[tuple[str, list[Any]]]) -> list[str]:
    """A table with one column per run (drain cases, sustained modes)."""
    width = max(len(k) for k, _ in rows)
    cells = [[fmt(v) for v in values] for _, values in rows]
    cols = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    head = "  " + " " * width + "".join(f"  {c:>{w}}" for c, w in zip(columns, cols, strict=True))
    lines = [title, head]
    for (name, _), row in zip(rows, cells, strict=True):
        lines.append(
            f"  {name:<{width}}" + "".join(f"  {v:>{w}}" for v, w in zip(row, cols, strict=True))
        )
    return [*lines, ""]


def cpu_rows(cpus: list[dict[str, Any]], prefix: str = "") -> list[tuple[str, list[Any]]]:
    """µs of CPU per task for every role any run measured; then the machine's busy cores.
    `prefix` names the part of a run they belong to when a table has two."""
    roles: list[str] = []
    for cpu in cpus:
        roles += [r for r in cpu["roles"] if r not in roles]
    rows = [
        (
            f"{prefix}CPU µs/task: {role}",
            [c["roles"].get(role, {}).get("us_per_task") for c in cpus],
        )
        for role in roles
    ]
    rows.append((f"{prefix}cores busy (machine)", [c["roles"]["machine"]["cores"] for c in cpus]))
    return rows


def cpu_table(cpu: dict[str, Any]) -> list[str]:
    title = f"CPU over {cpu['wall_s']:.1f} s"
    lines = [f"  {title:<25} {'cpu-s':>7} {'cores':>7} {'µs/task':>9}"]
    for role, v in cpu["roles"].items():
        lines.append(f"    {role:<23} {v['cpu_s']:>7.2f} {v['cores']:>7.2f} {v['us_per_task']:>9,}")
    return [*lines, ""]


def render(r: dict[str, Any]) -> str:
    out = render_setup(r)
    out += render_drain(r.get("drain"))
    out += render_sustained(r.get("sustained"))
    out += render_pickup(r.get("pickup"))
    out += render_http(r.get("http"))
    out += render_memory(r.get("memory"))
    out += render_large(r.get("large"))
    out += render_fairness(r.get("fairness"))
    out += render_lifecycle(r.get("lifecycle"), "lifecycle")
    out += render_lifecycle(r.get("instrumentation"), "instrumentation")
    out += render_peers(r.get("peers"))
    out += render_summary(r)
    out += render_shutdown(r)
    return "\n".join(out)


def render_setup(r: dict[str, Any]) -> list[str]:
    hw, ver, cfg, srv = r["hardware"], r["versions"], r["config"], r["servers"]
    out = section("Machine", [
        ("cores (nproc)", hw["nproc"]), ("CPU", hw["cpu_model"]), ("RAM GiB", hw["ram_gib"]),
        ("OS", hw["os"]), ("load average at start", hw["loadavg_at_start"]),
    ])  # fmt: skip
    out += section("Versions", [(k, v) for k, v in ver.items()])
    settings = srv.get("settings", {})
    out += section("Servers", [
        ("Redis", f"{srv['redis']}" + (" (private)" if srv["private"] else "")),
        ("  version", settings.get("redis_server")),
        *((f"  {k}", '""' if v == "" else v)
          for k, v in (settings.get("redis_settings") or {}).items()),
        ("PostgreSQL", f"{srv['postgresql']}" + (" (private)" if srv["private"] else "")),
        ("  version", settings.get("postgresql")),
        *((f"  {k}", v) for k, v in (settings.get("postgresql_settings") or {}).items()),
        ("database / Redis prefix", f"{srv.get('database')} / {srv.get('redis_prefix')}"),
    ])  # fmt: skip
    env = ", ".join(f"{k}={v}" for k, v in cfg["inherited_env"].items())
    warm = r.get("warmup_task_s")
    out += section("Configuration", [
        ("phases", ", ".join(cfg["phases"]) + (" (--quick)" if cfg["quick"] else "")),
        ("worker", f"{cfg['workers']} process(es) x concurrency {cfg['concurrency']} "
                   f"(drain: {', '.join(map(str, cfg['drain_workers']))} process(es))"),
        ("TASKSTREAM_* from env", env or "none"),
        ("API ready / warm-up tasks", f"{fmt(r.get('api_ready_s'))} s / "
                                      f"{'-' if warm is None else f'{warm * 1000:.0f}'} ms"),
    ])  # fmt: skip
    return out


def render_drain(d: dict[str, Any] | None) -> list[str]:
    if not d or not d.get("runs"):
        return []
    runs = d["runs"]

    def row(name: str, key: str) -> tuple[str, list[Any]]:
        return name, [x.get(key) for x in runs]

    rows = [
        row("pre-fill, batch HTTP (tasks/s)", "prefill_rate"),
        row("all published after pre-fill s", "published_after_prefill_s"),
        row("spawn -> first completion s", "startup_s"),
        row("spawn -> all completed s", "wall_s"),
        row("STEADY RATE (tasks/s), median run", "rate"),
        ("rates of the runs", [" / ".join(f"{x:,}" for x in r.get("rep_rates") or [])
                               for r in runs]),
        row("rate incl. start-up (tasks/s)", "rate_incl_startup"),
        row("completed", "completed"),
        ("failed / retried", [f"{x['failed']} / {x['retried']}" for x in runs]),
        # The peer body counts its runs in Redis: more than N is a duplicate, fewer distinct
        # than N a loss.
        ("body executions / distinct", [
            f"{x['executions']:,} / {x['unique']:,}" if "executions" in x else "-" for x in runs
        ]),
        row("submit -> start p50 ms (queueing)", "start_p50_ms"),
    ]  # fmt: skip
    rows += cpu_rows([x["cpu"] for x in runs])
    title = (
        f"Drain: {d['n']:,} tasks pre-filled, then the worker started "
        f"(concurrency {d['concurrency']} per process; median of {d.get('reps', 1)} run(s))"
    )
    return grid(title, [x["case"] for x in runs], rows)


def render_sustained(s: dict[str, Any] | None) -> list[str]:
    if not s:
        return []
    modes = [m for m in ("batch", "single") if m in s]
    if not modes:
        return []
    runs = [s[m] for m in modes]

    def row(name: str, key: str) -> tuple[str, list[Any]]:
        return name, [x.get(key) for x in runs]

    rows = [
        row("tasks per request", "tasks_per_request"),
        row("offered (tasks/s)", "offered_rate"),
        row("accepted (tasks/s)", "accepted_rate"),
        row("COMPLETED (tasks/s)", "completed_rate"),
        row("completed within the window /s", "completed_in_window_rate"),
        row("kept up", "kept_up"),
        row("last done after last submit s", "last_done_after_last_submit_s"),
        ("submit -> start p50/p95/p99 ms", [_trio(x) for x in runs]),
        row("submit -> start max ms", "start_max_ms"),
        ("HTTP request p50/p99 ms", [f"{fmt(x['http_p50_ms'])} / {fmt(x['http_p99_ms'])}"
                                     for x in runs]),
        row("send lateness p99 ms", "send_late_p99_ms"),
        ("HTTP errors", [x["http_errors"] or "none" for x in runs]),
        ("completed / failed / retried", [f"{x['completed']:,} / {x['failed']} / {x['retried']}"
                                          for x in runs]),
    ]  # fmt: skip
    rows += cpu_rows([x["cpu"] for x in runs])
    title = (
        f"Sustained: open-loop submits for {s['duration_s']:g} s over "
        f"{s['clients']} clients while the worker runs"
    )
    return grid(title, modes, rows)


def render_pickup(lat: dict[str, Any] | None) -> list[str]:
    if not lat:
        return []
    out = section(f"Pickup latency: single submits at {lat['rate']:g}/s", [
        ("sent / accepted", f"{lat['sent']:,} / {lat['accepted']:,}"),
        ("connections opened", lat["connections_opened"]),
        ("HTTP errors", lat["http_errors"] or "none"),
        ("PICKUP p50/p95/p99 ms", _trio(lat)),
        ("pickup max ms", lat["start_max_ms"]),
        ("submit -> finish p50/p99 ms", f"{fmt(lat['finish_p50_ms'])} / "
                                        f"{fmt(lat['finish_p99_ms'])}"),
        ("HTTP request p50/p99/max ms", f"{fmt(lat['http_p50_ms'])} / {fmt(lat['http_p99_ms'])}"
                                        f" / {fmt(lat['http_max_ms'])}"),
        ("send lateness p99/max ms", f"{fmt(lat['send_late_p99_ms'])} / "
                                     f"{fmt(lat['send_late_max_ms'])}"),
        ("all done after last send s", lat["drained_after_last_send_s"]),
        ("completed / failed / retried", f"{lat['completed']:,} / {lat['failed']} / "
                                         f"{lat['retried']}"),
    ])[:-1]  # fmt: skip
    return out + cpu_table(lat["cpu"])


def render_http(h: dict[str, Any] | None) -> list[str]:
    if not h or "capacity" not in h:
        return []
    rows: list[tuple[str, Any]] = []
    for name in ("capacity", "fixed_rate"):
        x = h[name]
        lat = x.get("latency_ms") or {}
        rows += [
            (f"{name}: mode / rate (req/s)", f"{x.get('mode')} / {fmt(x.get('ok_rate'))} ok"),
            (f"{name}: latency p50/p95/p99/max ms",
             " / ".join(fmt(lat.get(q)) for q in ("p50", "p95", "p99", "max"))),
            (f"{name}: errors", x.get("errors") or "none"),
            (f"{name}: load generator cores", x.get("cpu_cores")),
        ]  # fmt: skip
    rows.append(("backlog drained after s", h.get("drain_after_s")))
    return section("HTTP single submit (load generator in its own process)", rows)


def render_memory(m: dict[str, Any] | None) -> list[str]:
    if not m or "rss" not in m:
        return []
    rows: list[tuple[str, Any]] = [
        ("tasks (after a warm-up of)", f"{m['tasks']:,} ({m.get('warmup_tasks', 0):,})"),
        ("rate (tasks/s), backlog bound", f"{fmt(m.get('rate'))}, {fmt(m.get('max_backlog'))}"),
        ("completed / failed", f"{fmt(m.get('completed'))} / {fmt(m.get('failed'))}"),
    ]
    for role, x in m["rss"].items():
        rows.append((
            f"{role} RSS MB before -> after",
            f"{fmt(x['before_mb'])} -> {fmt(x['after_mb'])} ({fmt(x['growth_pct'])} %), "
            f"peak {fmt(x.get('peak_vmhwm_mb'))}, {x.get('processes')} process(es)",
        ))  # fmt: skip
    if redis := m.get("redis"):
        mb = {k: redis[k]["used_memory"] / 2**20 for k in ("before", "after")}
        rows.append(("Redis used_memory MB", f"{mb['before']:.1f} -> {mb['after']:.1f}"))
        if after := redis.get("streams_after"):
            rows.append(("streams after: entries / pending",
                         f"{after['entries']:,} / {after['pending']:,}"))  # fmt: skip
    return section("Memory: RSS from a warmed-up baseline to the end", rows)


def render_large(g: dict[str, Any] | None) -> list[str]:
    if not g or "http" not in g:
        return []
    t, fill = g["table"], g.get("fill") or {}
    rows: list[tuple[str, Any]] = [
        ("rows (this tenant's)", f"{t['rows']:,} ({t['tenant_rows']:,})"),
        ("size MB: heap + indexes", f"{t['heap_mb']:,} + {t['indexes_mb']:,}"),
        ("inserted to top up (rows/s)", f"{fill.get('inserted', 0):,} "
                                        f"({fmt(fill.get('fill_rate'))})"),
    ]  # fmt: skip
    for kind, m in g["http"].items():
        errors = f", errors {m['errors']}" if m.get("errors") else ""
        rows.append((
            f"{kind} p50/p95/p99/max ms",
            " / ".join(fmt(m.get(q)) for q in ("p50", "p95", "p99", "max")) + errors,
        ))  # fmt: skip
    for name, plan in (g.get("plans") or {}).items():
        auto = plan.get("auto") or {}
        how = "generic" if auto.get("generic") else "custom"
        rows.append((f"plan {name}", f"{auto.get('plan')} ({how}, {auto.get('execution_ms')} ms)"))
    return section(f"Large tables: {g.get('requests_each', 0):,} requests of each kind", rows)


def render_fairness(f: dict[str, Any] | None) -> list[str]:
    if not f:
        return []
    out = render_skew(f.get("skew"))
    out += render_many_tenants(f.get("tenants"))
    for part, why in (f.get("errors") or {}).items():
        out += [f"Fairness {part}: FAILED: {why[:300]}", ""]
    parts = [*(f.get("skew") or {}).get("runs", []), *(f.get("tenants") or {}).get("cases", [])]
    downs = [p["shutdown"] for p in parts if p.get("shutdown")]
    if downs:
        out += [f"Fairness deployments (logs: {Path(downs[0]['logs']).parent}/)"]
        out += [line for down in downs for line in _shutdown_rows(down)] or ["  all stopped"]
        out.append("")
    return out


def render_skew(s: dict[str, Any] | None) -> list[str]:
    if not s or "B" not in s:
        return []
    a, b = s["A"], s["B"]
    rows: list[tuple[str, list[Any]]] = []
    pairs = [(n, x, b["tenants"].get(n) or {}, s["p99_ratio"].get(n))
             for n, x in a["tenants"].items()]  # fmt: skip
    pairs.append(("all light, pooled", a["all"], b["all"], s["p99_ratio_pooled"]))
    for name, x, y, ratio in pairs:
        rows.append((name, [
            x["n"], x["p50_ms"], x["p99_ms"], y.get("p50_ms"), y.get("p99_ms"), y.get("max_ms"),
            "-" if ratio is None else f"{ratio:.2f}x",
        ]))  # fmt: skip
    title = (
        f"Fairness, tenant skew: {s['light_tenants']} light tenants x {s['rate_per_tenant']:g}/s "
        f"single submits for {s['duration_s']:g} s; A: no backlog, B: heavy backlog of "
        f"{s['backlog']:,}; body {s['body']}; submit -> start ms; the median of "
        f"{s.get('reps', 1)} A/B pair(s)"
    )
    cols = ["tasks", "A p50", "A p99", "B p50", "B p99", "B max", "p99 B/A"]
    out = grid(title, cols, rows)[:-1]
    fill = b.get("prefill") or {}

    def both(key: str) -> str:
        return f"{fmt(a['worker'][key])} / {fmt(b['worker'][key])}"

    each = zip(s["rep_ratios_worst"], s["rep_ratios_pooled"], strict=True)
    ratios = " / ".join(f"{fmt(worst)} ({fmt(pooled)})" for worst, pooled in each)
    fifths = [" / ".join(fmt(v) for v in x["all"]["p99_by_fifth_ms"]) for x in (a, b)]
    out += section("", [
        ("p99 B/A of each pair: worst (pooled)", ratios),
        ("saturated, each pair", " / ".join(fmt(x) for x in s["rep_saturated"])),
        ("pooled p99 by fifth of the window, A", fifths[0]),
        ("pooled p99 by fifth of the window, B", fifths[1]),
        ("heavy pre-fill, batches of 1,000 (tasks/s)", fill.get("prefill_rate")),
        ("window s, A / B", both("window_s")),
        (f"worker slots busy % (of {s['slots']:,}), A / B", both("slots_busy_pct")),
        ("tasks started per s, A / B", both("started_rate")),
        ("  of them the heavy tenant's, B", b["worker"]["heavy_started_rate"]),
        ("heavy tasks not started by B's end", b["worker"]["heavy_waiting_at_end"]),
        ("B saturated by the backlog", s["saturated"]),
        ("worker cores busy, A / B", f"{fmt(_cores(a, 'worker'))} / {fmt(_cores(b, 'worker'))}"),
        ("machine cores busy, A / B", f"{fmt(_cores(a, 'machine'))} / "
                                      f"{fmt(_cores(b, 'machine'))}"),
        ("sent / accepted, A / B", f"{a['sent']:,} / {a['accepted']:,}, "
                                   f"{b['sent']:,} / {b['accepted']:,}"),
        ("HTTP errors, A / B", f"{fmt(a['http_errors'] or 'none')} / "
                               f"{fmt(b['http_errors'] or 'none')}"),
        ("send lateness p99 ms, A / B", f"{fmt(a['send_late_p99_ms'])} / "
                                        f"{fmt(b['send_late_p99_ms'])}"),
    ])[1:]  # fmt: skip
    return out


def _cores(run: dict[str, Any], role: str) -> Any:
    return ((run.get("cpu") or {}).get("roles", {}).get(role) or {}).get("cores")


def render_many_tenants(t: dict[str, Any] | None) -> list[str]:
    if not t or not t.get("cases"):
        return []
    cases = t["cases"]

    def row(name: str, key: str) -> tuple[str, list[Any]]:
        return name, [c.get(key) for c in cases]

    rows = [
        ("tasks per tenant", [f"{c['n'] // c['tenants']:,}" for c in cases]),
        row("tenants + keys created in s", "create_tenants_s"),
        row("pre-fill, batch HTTP (tasks/s)", "prefill_rate"),
        row("spawn -> first completion s", "startup_s"),
        row("spawn -> all completed s", "wall_s"),
        row("STEADY RATE (tasks/s), median run", "rate"),
        ("rates of the runs", [" / ".join(f"{x:,}" for x in c.get("rep_rates") or [])
                               for c in cases]),
        row("vs the fewest tenants", "vs_fewest"),
        row("rate incl. start-up (tasks/s)", "rate_incl_startup"),
        ("completed / failed / retried", [f"{c['completed']:,} / {c['failed']} / {c['retried']}"
                                          for c in cases]),
    ]  # fmt: skip
    if all("cpu" in c for c in cases):
        rows += cpu_rows([c["cpu"] for c in cases])
    title = (
        f"Fairness, many tenants: {t['n']:,} {t['body']} tasks spread evenly, pre-filled, then "
        f"the worker started (median of {t['reps']} run(s); a deployment per tenant count)"
    )
    return grid(title, [f"{c['tenants']:,} tenant(s)" for c in cases], rows)


def render_lifecycle(life: dict[str, Any] | None, phase: str) -> list[str]:
    """An A/B phase (lifecycle, instrumentation): one column per drain, in the order they ran;
    then each rate's medians and B/A."""
    if not life:
        return []
    runs = [r[v] for r in life.get("rounds", []) for v in r["order"]]
    out: list[str] = []
    if runs:

        def row(name: str, key: str) -> tuple[str, list[Any]]:
            return name, [x.get(key) for x in runs]

        rows = [
            row("PRE-FILL / SUBMIT (tasks/s)", "prefill_rate"),
            row("all published after pre-fill s", "published_after_prefill_s"),
            row("DRAIN, STEADY RATE (tasks/s)", "rate"),
            row("rate incl. start-up (tasks/s)", "rate_incl_startup"),
            row("spawn -> first completion s", "startup_s"),
            row("spawn -> all completed s", "wall_s"),
            ("completed / failed / retried", [f"{x['completed']:,} / {x['failed']} / "
                                              f"{x['retried']}" for x in runs]),
            ("body executions / distinct", [f"{x.get('executions', 0):,} / "
                                            f"{x.get('unique', 0):,}" for x in runs]),
            *[(check, [x["checks"][check] for x in runs]) for check in runs[0]["checks"]],
            row("as configured", "as_configured"),
        ]  # fmt: skip
        rows += cpu_rows([x["prefill_cpu"] for x in runs], "pre-fill ")
        rows += cpu_rows([x["cpu"] for x in runs], "drain ")
        v = life["variants"]
        title = (
            f"{phase.capitalize()} (issue {life['issue']}, {life['label']}): {life['n']:,} "
            f"{life['body']} tasks "
            f"({life['payload_bytes']}-byte payloads) pre-filled, then {life['processes']} worker "
            f"processes; A: {_env(v['A'])}; B: {_env(v['B'])}; a deployment per drain"
        )
        cols = [f"r{r['round']} {x}" for r in life["rounds"] for x in r["order"]]
        out += grid(title, cols, rows)[:-1]
        rows2: list[tuple[str, Any]] = []
        for name, what in (("submit", "pre-fill / submit"), ("drain", "drain, steady")):
            s = life["summary"][name]
            each = " / ".join(fmt(r["ratios"][name]) for r in life["rounds"])
            rows2 += [
                (f"{what} tasks/s, median: A / B", f"{fmt(s['A_median'])} / {fmt(s['B_median'])}"),
                ("  B/A, median round (each round)", f"{fmt(s['ratio_median'])} ({each})"),
                ("  B/A of the medians", s["ratio_of_medians"]),
            ]  # fmt: skip
        out += section("", rows2)[1:]
    for what, why in (life.get("errors") or {}).items():
        out += [f"{phase.capitalize()} {what}: FAILED: {why[:300]}", ""]
    downs = [x["shutdown"] for x in runs if x.get("shutdown")]
    shut = [line for down in downs for line in _shutdown_rows(down)]
    if shut:
        out += [
            f"{phase.capitalize()} deployments (logs: {Path(downs[0]['logs']).parent}/)",
            *shut,
            "",
        ]
    return out


def _env(variables: dict[str, str]) -> str:
    return ", ".join(f"{k.removeprefix('TASKSTREAM_')}={v}" for k, v in variables.items())


def _shutdown_rows(down: dict[str, Any]) -> list[str]:
    """What stopping a deployment of the fairness or lifecycle phase found, if anything is off,
    and how much its services logged (the main run's shutdown section covers only its own)."""
    name = Path(down["logs"]).name
    lines = []
    for role, s in (down.get("processes") or {}).items():
        if s["exit_code"] != 0 or s["sigkilled"]:
            lines.append(f"  {name}: {role}: exit {s['exit_code']} after {s['stop_s']} s"
                         + (" (SIGKILL)" if s["sigkilled"] else ""))  # fmt: skip
    cleanup = down.get("cleanup") or {}
    if cleanup and (not cleanup.get("database_dropped") or cleanup.get("redis_keys_left")):
        lines.append(f"  {name}: cleanup: {fmt(cleanup)}")
    logged = down.get("logged") or {}
    if logged:  # the lines themselves are in the JSON report and the logs
        counts = ", ".join(f"{name} {found['lines']}" for name, found in logged.items())
        lines.append(f"  {name}: lines logged: {counts}")
    return lines


def render_peers(p: dict[str, Any] | None) -> list[str]:
    if not p:
        return []
    lines = ["Peers (same run, same servers; medians over repetitions)"]
    summary = p.get("summary") or {}
    if summary:
        lines.append(
            f"  {'library':<15} {'kind':<9} {'drain/s':>9} {'mode':<8} "
            f"{'p50':>7} {'p95':>7} {'p99':>7}  exactly once  version"
        )
        for lib, s in summary.items():
            lines.append(
                f"  {lib:<15} {s.get('kind') or '-':<9} {fmt(_int(s.get('drain_rate'))):>9} "
                f"{s.get('drain_mode') or '-':<8} {fmt(s.get('latency_p50')):>7} "
                f"{fmt(s.get('latency_p95')):>7} {fmt(s.get('latency_p99')):>7}  "
                f"{fmt(s.get('exactly_once')):<12}  {s.get('version') or '-'}"
                + (f"  ({s['error']})" if s.get("error") else "")
            )
    for e in p.get("errors") or []:
        lines.append(f"  error {e.get('lib')}: {str(e.get('error'))[:200]}")
    if p.get("error"):
        lines.append(f"  {str(p['error']).splitlines()[0][:200]}")
    return [*lines, ""]


def render_summary(r: dict[str, Any]) -> list[str]:
    rows = r.get("summary") or []
    phases = (("fairness", 12), ("lifecycle", 13), ("instrumentation", 14))
    notes = [f"{p}: issue {n}'s" for p, n in phases if r.get(p)]
    fair = f" ({'; '.join(notes)})" if notes else ""
    lines = [f"Summary against issue 5's targets{fair} (vs peer > 1: taskstream better)"]
    if not rows:
        return [*lines, "  no figures", ""]
    values = [f"{_val(x['value'])} {x['unit']}".rstrip() for x in rows]
    fig_w = max(len(x["figure"]) for x in rows)
    val_w = max(10, *(len(v) for v in values))
    tgt_w = max(6, *(len(x["target"] or "-") for x in rows))
    peer_w = max(9, *(len(x["peer"] or "-") for x in rows))
    lines.append(
        f"  {'figure':<{fig_w}}  {'taskstream':>{val_w}}  {'target':<{tgt_w}}  "
        f"{'best peer':<{peer_w}}  {'vs peer':>7}  result"
    )
    for x, value in zip(rows, values, strict=True):
        verdict = {True: "PASS", False: "FAIL", None: "-"}[x["passed"]]
        ratio = "-" if x["ratio"] is None else f"{x['ratio']:.2f}x"
        lines.append(
            f"  {x['figure']:<{fig_w}}  {value:>{val_w}}  {x['target'] or '-':<{tgt_w}}  "
            f"{x['peer'] or '-':<{peer_w}}  {ratio:>7}  {verdict}"
        )
    return [*lines, ""]


def _int(v: Any) -> Any:
    return round(v) if isinstance(v, float) else v


def _val(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    return fmt(v)


def _trio(x: dict[str, Any]) -> str:
    return " / ".join(fmt(x[f"start_{p}_ms"]) for p in ("p50", "p95", "p99"))


def render_shutdown(r: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, Any]] = []
    for name, why in (r.get("phase_errors") or {}).items():
        rows.append((f"phase {name}", f"FAILED: {why[:300]}"))
    for role, s in r.get("processes", {}).items():
        how = "SIGKILL" if s["sigkilled"] else "SIGTERM"
        rows.append((role, f"exit {s['exit_code']} after {s['stop_s']} s ({how})"))
    if r.get("cleanup"):
        rows.append(("cleanup", ", ".join(f"{k}={v}" for k, v in r["cleanup"].items())))
    for name, s in r.get("log_summary", {}).items():
        rows.append((f"log {name}", f"{s['lines']} line(s)"))
        rows += [("", f"  {line[:160]}") for line in s["sample"]]
    return section(f"Phases, shutdown and logs ({r['logs']})", rows)
