"""systemd timers -> monitors, and a drop-in per service that reports its runs.

A timer's `OnCalendar=` becomes `oncalendar` (several become a list);
without one, `OnUnitActiveSec=`/`OnUnitInactiveSec=` becomes `period`. A
timer that only fires after boot (`OnBootSec=` alone) has no schedule to
expect and is skipped. `RandomizedDelaySec=` and `AccuracySec=` (how late systemd
may start the run on purpose) are added to the grace, so the spread is no
alert.

The drop-in pings `/start` before the service starts (ExecStartPre=) and its
result after it stopped (ExecStopPost=, from $SERVICE_RESULT and
$EXIT_STATUS), with curl. Both lines start with `-`: a ping that fails never
fails the service. No rid: systemd never runs one unit twice at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from heartbeatd import pingurl
from heartbeatd.durations import format_duration
from heartbeatd.importers.render import Draft, Slugs, comment, monitor_toml, shorten
from heartbeatd.importers.units import (
    Unit,
    UnitError,
    enabled_units,
    find_units,
    first_span,
    load_unit,
    parse_timespan,
)

DROPIN_NAME = "heartbeatd.conf"
DEFAULT_GRACE = 3600


@dataclass(frozen=True)
class Settings:
    # The zone of OnCalendar= expressions that name none: the machine's.
    timezone: str = "UTC"
    slug_prefix: str = ""
    server: str = "http://127.0.0.1:8080"
    ping_key: str | None = None
    # Grace for a run that starts on time; RandomizedDelaySec= comes on top.
    grace: int = DEFAULT_GRACE
    # Also timers that are not enabled (linked into a .wants/ directory).
    include_disabled: bool = False
    curl: str = "/usr/bin/curl"


@dataclass(frozen=True)
class DropIn:
    service: str
    # Where it goes on the machine (we print it; we never write there).
    path: str
    text: str


@dataclass(frozen=True)
class Imported:
    toml: str
    dropins: tuple[DropIn, ...]
    monitors: tuple[Draft, ...]


def import_timers(root: Path, settings: Settings) -> Imported:
    """Read every *.timer unit under `root` (read-only) and draft its monitor."""
    slugs = Slugs(settings.slug_prefix)
    timers = find_units(root, ".timer")
    services = find_units(root, ".service")
    enabled = enabled_units(root)
    drafts: list[Draft] = []
    dropins: list[DropIn] = []
    skipped: list[str] = []
    for name, path in sorted(timers.items()):
        stem = name.removesuffix(".timer")
        if stem.endswith("@"):
            skipped.append(f"skipped {name}: a template; its instances are not listed here")
            continue
        if not settings.include_disabled and name not in enabled:
            skipped.append(f"skipped {name}: not enabled (--all imports it too)")
            continue
        try:
            timer = load_unit(root, name, path)
        except UnitError as exc:
            skipped.append(f"skipped {name}: {exc}")
            continue
        service_name = timer.last("Timer", "Unit") or f"{stem}.service"
        service = _load_service(root, services, service_name)
        result = _draft(timer, service_name, service, settings, slugs)
        if isinstance(result, str):
            skipped.append(f"skipped {name}: {result}")
            continue
        drafts.append(result)
        dropins.append(dropin(service_name, result.slug, settings))
    return Imported(_toml(drafts, dropins, skipped, root), tuple(dropins), tuple(drafts))


def _load_service(root: Path, services: dict[str, Path], name: str) -> Unit | None:
    path = services.get(name)
    if path is None:
        return None
    try:
        return load_unit(root, name, path)
    except UnitError:
        return None


def _draft(
    timer: Unit, service_name: str, service: Unit | None, settings: Settings, slugs: Slugs
) -> Draft | str:
    calendar = tuple(" ".join(v.split()) for v in timer.values("Timer", "OnCalendar"))
    period = first_span(
        timer.values("Timer", "OnUnitActiveSec") + timer.values("Timer", "OnUnitInactiveSec")
    )
    if not calendar and period is None:
        return "no OnCalendar= or OnUnitActiveSec=: it fires only after boot or start"
    notes = [f"{timer.path} -> {service_name}"]
    if service is None:
        notes.append(f"{service_name} was not found: install the drop-in where it lives")
    if calendar and period is not None:
        notes.append("OnUnitActiveSec= is left out: a monitor follows one schedule")
    delay = _span(timer.last("Timer", "RandomizedDelaySec"))
    # systemd may also start a run up to AccuracySec= late (1 min unless set,
    # which the grace covers anyway) to batch wake-ups.
    accuracy = _span(timer.last("Timer", "AccuracySec"))
    grace = None
    if delay or accuracy:
        grace = settings.grace + delay + accuracy
        spans = [
            f"{key}={format_duration(value)}"
            for key, value in (("RandomizedDelaySec", delay), ("AccuracySec", accuracy))
            if value
        ]
        notes.append(f"{' + '.join(spans)}: runs start up to that late, so it is part of the grace")
    persistent = (timer.last("Timer", "Persistent") or "").lower() in ("yes", "true", "1", "on")
    if calendar and persistent:
        notes.append("Persistent=true: a run missed while the machine was off runs at boot")
    elif calendar:
        notes.append("Persistent=false: a run missed while the machine was off is skipped")
    description = timer.last("Unit", "Description") or (
        service.last("Unit", "Description") if service else None
    )
    stem = timer.name.removesuffix(".timer")
    return Draft(
        slug=slugs.make([stem], "timer"),
        name=shorten(description or stem),
        description=f"systemd timer {timer.name}",
        oncalendar=calendar,
        period=None if calendar else period,
        timezone=settings.timezone if calendar else None,
        grace=grace,
        notes=tuple(notes),
    )


def _span(value: str | None) -> int:
    if value is None:
        return 0
    try:
        return parse_timespan(value)
    except ValueError:
        return 0


def dropin(service: str, slug: str, settings: Settings) -> DropIn:
    target = pingurl.PingTarget(pingurl.By.SLUG, slug, ping_key=settings.ping_key or None)
    url = _unit_escape(pingurl.build(settings.server.rstrip("/"), target))
    curl = f"{settings.curl} -fsS -m 10 --retry 3 -o /dev/null"
    # $$ is a $ for the shell (systemd would expand $X itself); a success is
    # /0; a failure is its exit status when it has a numeric one, else /fail
    # (killed by a signal, timed out, watchdog), with systemd's words as the body.
    report = (
        'if [ "$$SERVICE_RESULT" = success ]; then s=0; else case "$$EXIT_STATUS" in'
        ' ""|*[!0-9]*|0) s=fail;; *) s=$$EXIT_STATUS;; esac; fi;'
        f' exec {curl} --data-raw "service_result=$$SERVICE_RESULT'
        ' exit_code=$$EXIT_CODE exit_status=$$EXIT_STATUS"'
        f' "{url}/$$s"'
    )
    text = "\n".join(
        [
            f"# Reports each run of {service} to heartbeatd (monitor {slug}).",
            "[Service]",
            f"ExecStartPre=-{curl} {url}/start",
            f"ExecStopPost=-/bin/sh -c '{report}'",
            "",
        ]
    )
    path = f"/etc/systemd/system/{service}.d/{DROPIN_NAME}"
    return DropIn(service, path, text)


def _unit_escape(text: str) -> str:
    # % starts a specifier in unit files; $ an environment variable.
    return text.replace("%", "%%").replace("$", "$$")


def _toml(
    drafts: Sequence[Draft], dropins: Sequence[DropIn], skipped: Sequence[str], root: Path
) -> str:
    parts = [comment(f"heartbeatd import timers: {len(drafts)} monitor(s) from {root}") + "\n"]
    if skipped:
        parts.append("".join(comment(line) + "\n" for line in skipped))
    parts += [monitor_toml(draft) for draft in drafts]
    if dropins:
        block = [comment("Drop-ins that report each run (install, then systemctl daemon-reload):")]
        for item in dropins:
            block.append(comment(f"==> {item.path} <=="))
            block += [comment(line) if line else "#" for line in item.text.rstrip("\n").split("\n")]
        parts.append("\n".join(block) + "\n")
    return "\n".join(parts)
