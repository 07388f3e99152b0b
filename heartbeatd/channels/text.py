"""Wording shared by the channels that write prose (email, chat, push).

Pure functions of an Alert, so every channel says the same thing the same way.
"""

from __future__ import annotations

from heartbeatd import humanize
from heartbeatd.alerts import Alert
from heartbeatd.model import AlertEvent, Reason
from heartbeatd.times import isoformat

# The last output of a job is most useful at its end, where errors are printed.
EXCERPT_CHARS = 2000


def display_name(alert: Alert) -> str:
    return alert.name or alert.monitor


# The headline of each event; {name} is the monitor's display name. A group
# has one of its own (the count of its alerts by event).
TITLES: dict[AlertEvent, str] = {
    AlertEvent.DOWN: "DOWN: {name}",
    AlertEvent.UP: "UP: {name}",
    AlertEvent.REMINDER: "REMINDER: {name} is still down",
    AlertEvent.OVERLAP: "OVERLAP: {name}",
    AlertEvent.ANOMALY: "ANOMALY: {name}",
    AlertEvent.ESCALATION: "ESCALATION: {name} is down, unacknowledged",
    AlertEvent.LATE: "LATE: {name}",
    AlertEvent.HELD: "HELD: {name} ({held_by})",
    AlertEvent.DAEMON_GAP: "HEARTBEATD WAS NOT RUNNING",
    AlertEvent.SILENCE: "SILENCE: no pings reach heartbeatd",
    AlertEvent.TEST: "TEST: heartbeatd test alert",
}


def title(alert: Alert) -> str:
    """The one-line headline, also the email subject (DESIGN §5)."""
    if alert.event is AlertEvent.GROUP:
        return f"{len(alert.members)} alerts: " + _tally(alert.members)
    # Only the template is parsed: braces in a name are printed as they are.
    return TITLES[alert.event].format(name=display_name(alert), held_by=alert.held_by)


def explain(alert: Alert) -> str:
    """The reason in words a person paged at night understands."""
    if alert.event is AlertEvent.TEST:
        return "a test alert: if you can read this, the channel works"
    if alert.is_daemon_event:
        return alert.note
    return humanize.reason(
        alert.reason.value,
        alert.exit_status,
        duration=alert.duration,
        reference=alert.min_runtime if alert.min_runtime is not None else alert.median,
    )


def facts(alert: Alert) -> list[tuple[str, str]]:
    """Labelled lines for a message body; absent values are left out."""
    if alert.is_daemon_event:
        return daemon_facts(alert)
    if alert.event is AlertEvent.GROUP:
        # One line a monitor: the table of a grouped message.
        return [(display_name(m), _member_line(m)) for m in alert.members]
    rows = [
        ("Monitor", alert.monitor),
        ("Status", alert.status.value),
        ("Reason", explain(alert)),
        ("Last ping", isoformat(alert.last_ping) or "never"),
    ]
    if alert.expected_at is not None:
        rows.append(("Expected at", isoformat(alert.expected_at) or ""))
    if alert.down_at is not None:
        rows.append(("Down since", isoformat(alert.down_at) or ""))
    if alert.event is AlertEvent.UP and alert.downtime is not None:
        rows.append(("Down for", humanize.duration(alert.downtime)))
    if alert.exit_status is not None and alert.reason is not Reason.EXIT_STATUS:
        rows.append(("Exit status", str(alert.exit_status)))
    if alert.duration is not None:
        rows.append(("Run took", humanize.duration(alert.duration)))
    if alert.min_runtime is not None:
        rows.append(("Minimum run time", humanize.duration(alert.min_runtime)))
    if alert.median is not None:
        rows.append(("Median run", humanize.duration(alert.median)))
    if alert.ack_url:
        # Opens a confirmation page; only its button acknowledges.
        rows.append(("Acknowledge", alert.ack_url))
    return rows


def daemon_facts(alert: Alert) -> list[tuple[str, str]]:
    # The first row is the event: ntfy leaves the first row out (its title
    # says it), as it does a monitor's name.
    rows = [("Event", alert.event.value)]
    if alert.event is AlertEvent.DAEMON_GAP:
        rows += [
            ("Not running from", isoformat(alert.since) or "unknown"),
            ("Until", isoformat(alert.at) or ""),
        ]
        label = "Deadlines moved"
    else:
        rows += [
            ("Last ping", isoformat(alert.since) or "none since heartbeatd started"),
            ("Noticed at", isoformat(alert.at) or ""),
        ]
        label = "Monitors expected"
    if alert.count:
        shown = ", ".join(alert.monitors)
        more = alert.count - len(alert.monitors)
        rows.append((label, f"{shown} and {more} more" if more > 0 else shown))
    return rows


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The last `limit` characters of `text`, marked when cut."""
    text = text.rstrip()
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :]


def headline(alert: Alert) -> str:
    """The first sentence of a message: what happened, in a line."""
    if alert.is_daemon_event:
        return alert.note
    name = display_name(alert)
    if alert.event is AlertEvent.GROUP:
        return f"{len(alert.members)} alerts at once ({_tally(alert.members)}):"
    if alert.event is AlertEvent.DOWN:
        return f"{name} is down: {explain(alert)}."
    if alert.event is AlertEvent.REMINDER:
        return f"{name} is still down: {explain(alert)}."
    if alert.event is AlertEvent.ESCALATION:
        return f"{name} is down and nobody has acknowledged it yet: {explain(alert)}."
    if alert.event is AlertEvent.UP:
        if alert.downtime is None:
            return f"{name} is up again."
        return f"{name} is up again after {humanize.duration(alert.downtime)}."
    if alert.event in (AlertEvent.OVERLAP, AlertEvent.ANOMALY):
        # A notice: the monitor's status did not change.
        return f"{name}: {explain(alert)}."
    if alert.event is AlertEvent.LATE:
        return f"{name} is late: no ping since it was expected; it goes down after its grace."
    if alert.event is AlertEvent.HELD:
        return f"{name} went {alert.status.value}; its alert is held by {alert.held_by}."
    return "This is a test alert from heartbeatd: if you can read it, the channel works."


def _tally(members: tuple[Alert, ...]) -> str:
    """ "3 down, 1 up": the events of a group, most common first."""
    counts: dict[str, int] = {}
    for m in members:
        counts[m.event.value] = counts.get(m.event.value, 0) + 1
    return ", ".join(f"{n} {event}" for event, n in sorted(counts.items(), key=lambda e: -e[1]))


def _member_line(alert: Alert) -> str:
    line = f"{alert.event.value.upper()}, {explain(alert)}, at {isoformat(alert.at)}"
    if alert.ack_url:
        line += f"; acknowledge: {alert.ack_url}"
    return line


def member_list(alert: Alert, limit: int) -> str:
    """A group's monitors, one line each, as many as fit in `limit`
    characters (chat messages have a size limit; an email lists them all)."""
    lines: list[str] = []
    used = 0
    for i, member in enumerate(alert.members):
        line = f"- {display_name(member)}: {_member_line(member)}"
        rest = len(alert.members) - i
        if used + len(line) + 40 > limit and rest > 0:
            lines.append(f"… and {rest} more")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)
