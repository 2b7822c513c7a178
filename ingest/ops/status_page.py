"""The status page: one self-contained HTML document (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

from datetime import datetime
from html import escape

from recvault.ingest.ops.charts import bar_chart
from recvault.ops.status import WINDOW_DAYS, WINDOW_HOURS, Recent, StatusFigures

# The page reloads itself this often (the figures behind it are at most FIGURES_SECONDS old).
REFRESH_SECONDS = 30
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2329}
header{background:#1d2f45;color:#fff;padding:12px 24px}header h1{font-size:20px;margin:0}
header p{margin:2px 0 0;color:#c4d0dc;font-size:12px}main{padding:16px 24px;max-width:1200px}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin-bottom:16px}
.tile{background:#fff;border-radius:6px;padding:10px 12px;box-shadow:0 1px 2px #0002}
.tile b{display:block;font-size:24px}.tile span{color:#5a6672;font-size:12px}
.warn b{color:#b3261e}section{background:#fff;border-radius:6px;padding:12px 16px;margin-bottom:16px;
box-shadow:0 1px 2px #0002}h2{font-size:15px;margin:0 0 8px}.chart{width:100%;height:auto;max-height:240px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #e3e7eb}th{color:#5a6672;font-weight:600}td.n{text-align:right}
.s-completed{color:#1b7a35}.s-dead-lettered,.s-failed{color:#b3261e}.s-absent{color:#9a6700}
.problems{background:#fdecea;color:#8c1d18;padding:8px 12px;border-radius:6px;margin-bottom:12px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}code{font-size:12px}
header form{float:right;margin:0}header button{font:inherit;cursor:pointer}
"""
# The sign-out button: a form, so it works without script (a POST: a link elsewhere cannot sign anyone out).
SIGN_OUT = ('<form method="post" action="/status/logout"><button type="submit" data-action="sign-out">'
            "Sign out</button></form>")


def render_status(figures: StatusFigures, *, spool_depth: int, broker_up: bool, user: str | None) -> str:
    """The whole page for these figures."""
    f = figures
    today = f.days[-1] if f.days else None
    queue = f.queue
    tiles = [
        ("archived-24h", f"{f.archived_last_hours}", f"archived in the last {WINDOW_HOURS} h", False),
        ("minutes-today", f"{today.minutes:.1f}" if today else "0", "recording minutes today", False),
        ("cost-today", _cost(today.cost) if today else "0", "Twilio cost today", False),
        ("queue-waiting", str(queue.waiting) if queue else "?", "waiting in the queue", queue is None),
        ("queue-held", str(queue.held) if queue else "?", "held by workers", queue is None),
        ("spool-depth", str(spool_depth), "in this ingest's spool", spool_depth > 0),
        ("dead-letters", "?" if f.dead_letters_total is None else str(f.dead_letters_total),
         "dead letters", bool(f.dead_letters_total)),
        ("latency-p50", _seconds(f.latency.get("p50")), "callback → archived, median", False),
        ("latency-p99", _seconds(f.latency.get("p99")), "callback → archived, p99", False),
    ]
    hours = [(hour.strftime("%H:00"), float(count)) for hour, count in f.hours]
    minutes = [(day.date[5:], day.minutes) for day in f.days]
    cost = [(day.date[5:], day.cost.get("USD", 0.0)) for day in f.days]
    body = [
        '<div class="tiles">',
        *(f'<div class="tile{" warn" if warn else ""}"><b data-figure="{key}">{escape(value)}</b>'
          f"<span>{escape(label)}</span></div>" for key, value, label, warn in tiles),
        "</div>",
        _section(f"Archives per hour (last {WINDOW_HOURS} h, UTC)",
                 bar_chart(hours, title="recordings archived per hour", name="archives-per-hour")),
        '<div class="grid2">',
        _section(f"Recording minutes per day (last {WINDOW_DAYS} days)",
                 bar_chart(minutes, title="recording minutes per day", value=lambda v: f"{v:.1f}",
                           name="minutes-per-day")),
        _section(f"Twilio cost per day, USD (last {WINDOW_DAYS} days)",
                 bar_chart(cost, title="Twilio cost per day", value=lambda v: f"${v:.4f}", name="cost-per-day")),
        "</div>",
        _section(f"Callback received → archived (last {WINDOW_HOURS} h, {f.latency_count} recordings)",
                 _table(["p50", "p90", "p99", "max"],
                        [[_seconds(f.latency.get(k)) for k in ("p50", "p90", "p99", "max")]], "latency")),
        '<div class="grid2">',
        _section("Dead letters by error", _table(["error", "count", "latest reason"],
                 [[e, str(n), r] for e, n, r in f.dead_letters_by_error], "dead-letters")
                 + '<p><code>recvault dlq list</code> · <code>recvault dlq replay --all</code></p>'),
        _section(f"Recordings that ended without media (last {WINDOW_DAYS} days)",
                 _table(["status", "Twilio error", "count"], [[s, c, str(n)] for s, c, n in f.failures], "failures")),
        "</div>",
        _section("Most recent recordings", _recent(f.recent)),
        _section("Per day", _table(["date", "recordings", "minutes", "cost"],
                 [[d.date, str(d.recordings), f"{d.minutes:.1f}", _cost(d.cost)] for d in reversed(f.days)], "days")),
        _section("API", _api_help()),
    ]
    problems = list(f.problems) + ([] if broker_up else ["this ingest cannot reach Redis: callbacks go to its spool"])
    banner = f'<div class="problems">{"<br>".join(escape(p) for p in problems)}</div>' if problems else ""
    coverage = (f"{f.documents_read} documents read"
                + (f", {f.documents_unread} not yet (they are read over the next refreshes)"
                   if f.documents_unread else ""))
    who = f" · signed in as {escape(user)}" if user else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>recvault status</title><style>{STYLE}</style></head><body>"
        f"<header>{SIGN_OUT}<h1>recvault status</h1><p>generated {_time(f.generated_at)} UTC · "
        f"reloads every {REFRESH_SECONDS} s · {escape(coverage)}{who}</p></header>"
        f"<main>{banner}{''.join(body)}</main></body></html>"
    )


def _section(title: str, content: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{content}</section>"


def _table(headings: list[str], rows: list[list[str]], name: str) -> str:
    if not rows:
        return f'<p data-table="{name}">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table data-table="{name}"><tr>{head}</tr>{body}</table>'


def _recent(recent: list[Recent]) -> str:
    if not recent:
        return '<p data-table="recent">none yet</p>'
    rows = []
    for r in recent:
        link = escape(r.sid)
        if r.sid.startswith("RE") and r.day:
            query = f"?date={r.day}"
            link = (f'<a href="/api/recordings/{escape(r.sid)}{query}">{escape(r.sid)}</a>'
                    + (f' · <a href="/api/recordings/{escape(r.sid)}/media{query}">play</a>'
                       if r.status == "completed" else ""))
        rows.append(
            f'<tr data-sid="{escape(r.sid)}"><td>{_time(r.at)}</td><td>{link}</td>'
            f'<td class="s-{escape(r.status)}">{escape(r.status)}</td>'
            f'<td class="n">{"" if r.duration is None else r.duration}</td><td>{escape(r.source or "")}</td>'
            f'<td class="n">{_seconds(r.latency_seconds) if r.latency_seconds is not None else ""}</td>'
            f"<td>{escape(r.detail or '')}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("at (UTC)", "recording", "status", "seconds", "source",
                                            "callback → archived", "detail"))
    return f'<table data-table="recent"><tr>{head}</tr>{"".join(rows)}</table>'


def _api_help() -> str:
    return (
        "<p>Every route takes <code>Authorization: Bearer $RECVAULT_API_TOKEN</code> (or this page's login). "
        "Add <code>X-Recvault-User: &lt;your name&gt;</code> so media access is recorded under your name "
        "(unless the sign-in proxy names you).</p>"
        "<p><code>GET /api/recordings?from=YYYY-MM-DD&amp;to=…&amp;account=AC…&amp;call=CA…&amp;source=…"
        "&amp;status=completed,absent&amp;tag=name=value&amp;label=name=value&amp;rule=…&amp;limit=50&amp;cursor=…</code><br>"
        "<code>GET /api/recordings/RE…</code> (metadata, events, audit trail) · "
        "<code>GET /api/recordings/RE…/media</code> (302 to a 5-minute link; recorded in the audit trail) · "
        '<a href="/api/openapi.json">/api/openapi.json</a></p>'
    )


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} s" if value < 60 else f"{value / 60:.1f} min"


def _cost(cost: dict[str, float]) -> str:
    if not cost:
        return "0.0000"
    return " + ".join(f"{amount:.4f} {unit}" for unit, amount in sorted(cost.items()))


def render_login(*, error: str | None = None, next_path: str = "/status", proxy_header: str | None = None,
                 identity: str | None = None) -> str:
    """The sign-in form: the API token, and the name media access is recorded under.

    With a sign-in proxy in front (`proxy_header`), the person is the one it names (`identity`), not a
    name typed here."""
    message = f'<p class="problems">{escape(error)}</p>' if error else ""
    if proxy_header is None:
        person = ('<p><label>Your name (recorded when you play a recording)<br><input name="user" size="40" '
                  'maxlength="128"></label></p>')
    elif identity is not None:
        person = (f'<p>Signing in as <b data-identity="">{escape(identity)}</b>, as the sign-in proxy names you '
                  "(recorded when you play a recording).</p>")
    else:
        person = (f'<p class="problems">This page must be opened through the sign-in proxy: the request does not '
                  f"name you ({escape(proxy_header)} is missing).</p>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>recvault sign-in</title>'
        f"<style>{STYLE}</style></head><body><header><h1>recvault status</h1></header><main><section>"
        f"<h2>Sign in</h2>{message}"
        '<form method="post" action="/status/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<p><label>API token (RECVAULT_API_TOKEN)<br><input type="password" name="token" required '
        f'autocomplete="current-password" size="40"></label></p>{person}'
        '<p><button type="submit">Sign in</button></p></form>'
        "</section></main></body></html>"
    )
