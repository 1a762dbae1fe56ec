"""The printed report: one section per part of the run, a CPU table after each phase."""

from __future__ import annotations

from typing import Any


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def section(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    width = max(len(k) for k, _ in rows)
    return [title, *(f"  {k:<{width}}  {fmt(v)}" for k, v in rows), ""]


def cpu_table(cpu: dict[str, Any]) -> list[str]:
    title = f"CPU over {cpu['wall_s']:.1f} s"
    lines = [f"  {title:<25} {'cpu-s':>7} {'cores':>7} {'µs/task':>9}"]
    for role, v in cpu["roles"].items():
        lines.append(f"    {role:<23} {v['cpu_s']:>7.2f} {v['cores']:>7.2f} {v['us_per_task']:>9,}")
    return [*lines, ""]


def render(r: dict[str, Any]) -> str:
    out = render_setup(r)
    out += render_throughput(r["throughput"])
    out += render_latency(r["latency"])
    out += render_shutdown(r)
    return "\n".join(out)


def render_setup(r: dict[str, Any]) -> list[str]:
    hw, ver, cfg = r["hardware"], r["versions"], r["config"]
    out = section("Machine", [
        ("cores (nproc)", hw["nproc"]), ("CPU", hw["cpu_model"]), ("RAM GiB", hw["ram_gib"]),
        ("OS", hw["os"]), ("load average at start", hw["loadavg_at_start"]),
    ])  # fmt: skip
    out += section("Versions", [(k, v) for k, v in ver.items()])
    out += section("Configuration", [
        ("servers", f"{r['servers']['redis']}, {r['servers']['postgresql']}"
                    + (" (private)" if r["servers"]["private"] else "")),
        ("worker", f"{cfg['workers']} process(es) x concurrency {cfg['concurrency']}"),
        ("phase 1", f"{cfg['n']:,} tasks, batches of {cfg['batch_size']}, "
                    f"{cfg['submitters']} clients"),
        ("phase 2", f"{cfg['rate']:g}/s for {cfg['duration']:g} s, one {cfg['http_client']} "
                    "client"),
        ("TASKSTREAM_* from env", ", ".join(f"{k}={v}" for k, v in cfg["inherited_env"].items())),
        ("API ready / warm-up task", f"{r['api_ready_s']} s / {r['warmup_task_s'] * 1000:.0f} ms"),
    ])  # fmt: skip
    return out


def render_throughput(t: dict[str, Any]) -> list[str]:
    # [:-1]: the CPU table follows the phase's rows without a blank line between them.
    out = section("Phase 1: throughput (submit -> completed)", [
        ("submit rate (tasks/s)", t["submit_rate"]),
        ("submit time s", t["submit_s"]),
        ("batch request p50 / max ms", f"{fmt(t['batch_request_p50_ms'])} / "
                                       f"{fmt(t['batch_request_max_ms'])}"),
        ("completed when submit ended", t["completed_when_submit_ended"]),
        ("END-TO-END THROUGHPUT (tasks/s)", t["e2e_throughput"]),
        ("first submit -> all completed s", t["total_s"]),
        ("steady completion rate (tasks/s)", t["steady_rate"]),
        ("submit -> start p50/p95/p99 ms", _trio(t)),
        ("submit -> start max ms", t["start_max_ms"]),
        ("submit -> finish p50/p99 ms", f"{fmt(t['finish_p50_ms'])} / {fmt(t['finish_p99_ms'])}"),
        ("completed / failed / retried", f"{t['completed']:,} / {t['failed']} / {t['retried']}"),
    ])[:-1]  # fmt: skip
    return out + cpu_table(t["cpu"])


def render_latency(lat: dict[str, Any]) -> list[str]:
    out = section("Phase 2: pickup latency at a steady rate", [
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


def _trio(x: dict[str, Any]) -> str:
    return " / ".join(fmt(x[f"start_{p}_ms"]) for p in ("p50", "p95", "p99"))


def render_shutdown(r: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, Any]] = []
    for role, s in r["processes"].items():
        how = "SIGKILL" if s["sigkilled"] else "SIGTERM"
        rows.append((role, f"exit {s['exit_code']} after {s['stop_s']} s ({how})"))
    rows.append(("cleanup", ", ".join(f"{k}={v}" for k, v in r["cleanup"].items())))
    for name, s in r["log_summary"].items():
        rows.append((f"log {name}", f"{s['lines']} line(s)"))
        rows += [("", f"  {line[:160]}") for line in s["sample"]]
    return section(f"Shutdown and logs ({r['logs']})", rows)
