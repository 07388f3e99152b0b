"""Crontabs -> monitors, and the same crontab with each job wrapped in `heartbeatd exec`.

Read the way Debian's cron reads them: blank lines and `#` comments pass
through; `NAME=value` lines set the environment of the jobs after them (we
follow SHELL, CRON_TZ and TZ); a job line is five time fields (or an
@nickname), a user name in system crontabs (/etc/crontab, /etc/cron.d/*),
then a shell command in which an unescaped `%` ends the command and starts
its standard input. Every line we do not wrap is printed as it was, and the
reason is a comment in the TOML.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from heartbeatd.importers.render import Draft, Slugs, comment, monitor_toml, shorten
from heartbeatd.schedule import cron_problem, timezone_problem

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# cron itself refuses longer lines; one this long is no job anyone wrote.
MAX_LINE = 4096

_ENV = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
# The fields before the command, with the spacing kept so the rewritten line
# differs from the original only in its command.
_FIVE = re.compile(r"(\s*(?:\S+\s+){5})(.*)", re.DOTALL)
_NICK = re.compile(r"(\s*@\S+\s+)(.*)", re.DOTALL)
_USER = re.compile(r"(\S+\s+)(.*)", re.DOTALL)
# Commands made only of these characters mean the same without a shell.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:,+@-]+")
# Programs that say nothing about what a job does: skipped when naming it.
_PLUMBING = {"test", "[", "[[", "cd", "true", "false", ":", "sleep", "exit", "perl"}
# Programs that run another one: named by what they run.
# Programs that run another one, and their options that take a value.
_WRAPPERS = {
    "env": {"-u"},
    "nice": {"-n"},
    "ionice": {"-c", "-n", "-p"},
    "nohup": set(),
    "chronic": set(),
    "timeout": {"-s", "-k"},
    "flock": {"-w", "-E"},
    "sudo": {"-u", "-g"},
    "exec": set(),
}
_RUNNERS = {"run-parts", "sh", "bash", "dash", "zsh", "python", "python3", "perl", "php", "ruby"}
_SUBSTITUTION = re.compile(r"\$\([^()]*\)|`[^`]*`")
_REDIRECT = re.compile(r"\d*[<>]{1,2}(?:&\d*-?|\s*[^\s;&|<>]+)")
_SCRIPT_SUFFIXES = (".sh", ".bash", ".py", ".pl", ".php", ".rb")


@dataclass(frozen=True)
class Settings:
    """How to import: where heartbeatd is and how jobs reach it."""

    # The zone cron reads schedules in when the crontab sets no CRON_TZ/TZ.
    timezone: str = "UTC"
    system: bool = False
    slug_prefix: str = ""
    # The `heartbeatd` the wrapped lines run (cron's PATH is short).
    program: str = "heartbeatd"
    server: str = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Imported:
    toml: str
    crontab: str
    monitors: tuple[Draft, ...]


def is_system_crontab(path: str) -> bool:
    """Whether a file has the user column: /etc/crontab and /etc/cron.d/*."""
    p = PurePosixPath(path)
    return (p.name == "crontab" and p.parent.name == "etc") or p.parent.name == "cron.d"


def import_crontab(text: str, source: str, settings: Settings) -> Imported:
    slugs = Slugs(settings.slug_prefix)
    env = {"SHELL": "/bin/sh"}
    drafts: list[Draft] = []
    skipped: list[str] = []
    out = [
        "# Rewritten by heartbeatd import crontab: each job reports to heartbeatd.",
        f"HEARTBEATD_SERVER={settings.server}",
    ]
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        where = f"{source} line {lineno}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            out.append(line)
            continue
        if len(line) > MAX_LINE or "\x00" in line or "\ufffd" in line:
            what = "is too long" if len(line) > MAX_LINE else "is not text"
            skipped.append(f"skipped {where}: it {what}")
            out.append(line)
            continue
        env_match = _ENV.fullmatch(line)
        if env_match:
            env[env_match[1]] = _unquote(env_match[2].strip())
            out.append(line)
            continue
        job = _read_job(line, settings.system)
        if isinstance(job, str):
            skipped.append(f"skipped {where}: {job}")
            out.append(line)
            continue
        head, expr, user, command = job
        draft = _draft(expr, user, command, where, env, settings, slugs)
        drafts.append(draft)
        shell = env.get("SHELL") or "/bin/sh"
        out.append(head + wrap_command(command, draft.slug, shell, settings.program))
    toml = _toml(drafts, skipped, source)
    return Imported(toml, "\n".join(out).rstrip("\n") + "\n", tuple(drafts))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _read_job(line: str, system: bool) -> tuple[str, str, str | None, str] | str:
    """(the text before the command, cron expression, user, command), or why not a job."""
    if line.lstrip().startswith("@"):
        match = _NICK.fullmatch(line)
        nick = line.split()[0]
        if nick == "@reboot":
            return "@reboot runs once at boot, not on a schedule"
        if nick not in NICKNAMES or match is None:
            return f'unknown schedule "{shorten(nick, 20)}"'
        head, rest, expr = match[1], match[2], NICKNAMES[nick]
    else:
        match = _FIVE.fullmatch(line)
        if match is None:
            return "not a job line (five time fields and a command)"
        head, rest, expr = match[1], match[2], " ".join(match[1].split())
        problem = cron_problem(expr)
        if problem is not None:
            return problem
    user = None
    if system:
        user_match = _USER.fullmatch(rest)
        if user_match is None:
            return "no user name and command after the schedule"
        head, rest, user = head + user_match[1], user_match[2], user_match[1].strip()
    if not rest.strip():
        return "no command"
    if "heartbeatd exec" in rest:
        return "already wrapped in heartbeatd exec"
    return head, expr, user, rest


def _draft(
    expr: str,
    user: str | None,
    command: str,
    where: str,
    env: dict[str, str],
    settings: Settings,
    slugs: Slugs,
) -> Draft:
    notes = [f"{where}{f' (as {user})' if user else ''}: {shorten(command, 200)}"]
    zone = env.get("CRON_TZ") or env.get("TZ") or settings.timezone
    if timezone_problem(zone) is not None:
        notes.append(
            f'"{shorten(zone, 40)}" is not a time zone heartbeatd knows; using {settings.timezone}'
        )
        zone = settings.timezone
    run, _ = split_stdin(command)
    return Draft(
        slug=slugs.make(name_words(run), "cron"),
        name=shorten(run.replace("\\%", "%")),
        description=where + (f", runs as {user}" if user else ""),
        schedule=expr,
        timezone=zone,
        notes=tuple(notes),
    )


def split_stdin(command: str) -> tuple[str, str]:
    """(the command, its `%…` standard input): cron ends a command at the
    first `%` not written as `\\%`."""
    i = 0
    while i < len(command):
        if command[i] == "\\" and command[i + 1 : i + 2] == "%":
            i += 2
            continue
        if command[i] == "%":
            return command[:i], command[i:]
        i += 1
    return command, ""


def wrap_command(command: str, slug: str, shell: str, program: str = "heartbeatd") -> str:
    """The job line's command run under `heartbeatd exec SLUG`, meaning the same to cron.

    `heartbeatd exec` runs a program, not a shell line, so anything but plain
    words goes through the crontab's SHELL, quoted. A `%…` standard input
    stays outside the quotes, where cron looks for it; `\\%` stays as it is
    (cron turns it into `%` inside the quotes too).
    """
    run, stdin = split_stdin(command)
    run = run.strip()
    prefix = f"{program} exec {slug} --"
    if all(_PLAIN_WORD.fullmatch(word) for word in run.split()):
        return f"{prefix} {run}{stdin}"
    quoted = "'" + run.replace("'", "'\\''") + "'"
    return f"{prefix} {shell} -c {quoted}{stdin}"


def name_words(command: str) -> list[str]:
    """What names a job: "cd / && run-parts --report /etc/cron.daily" ->
    ["run-parts", "cron.daily"]; "certbot -q renew" -> ["certbot", "renew"]."""
    # Redirections (`2>&1`, `> /dev/null`) name nothing, and their `&` is no `&&`.
    # Command substitutions ($(date), `hostname`) are arguments, not steps.
    command = _SUBSTITUTION.sub("", command.replace("\\%", "%"))
    command = _REDIRECT.sub(" ", command)
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|(){}")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        # Unbalanced quotes: cron's shell would fail too; name it by its words.
        tokens = command.split()
    chain: list[list[str]] = [[]]
    for token in tokens:
        if token and all(ch in ";&|(){}" for ch in token) and token not in ("|",):
            chain.append([])
        else:
            chain[-1].append(token)
    named = [words for words in (_program_words(seg) for seg in chain) if words]
    # The last step of a chain is what the job is for ("cd / && backup"); in a
    # pipeline, the first command is ("pg_dump | gzip").
    return named[-1] if named else []


def _program_words(segment: Sequence[str]) -> list[str]:
    words = list(segment)
    if "|" in words:
        words = words[: words.index("|")]
    while words and ("=" in words[0] and not words[0].startswith("=")):
        words.pop(0)  # VAR=value before the program
    while words and PurePosixPath(words[0]).name in _WRAPPERS:
        program = PurePosixPath(words.pop(0)).name
        while words and (words[0].startswith("-") or "=" in words[0]):
            if words.pop(0) in _WRAPPERS[program] and words:
                words.pop(0)
        if program in ("timeout", "flock") and words:
            words.pop(0)  # the duration or the lock file
    if not words:
        return []
    program = PurePosixPath(words[0]).name
    if program in _PLUMBING:
        return []
    name = [_script_name(program)]
    args = [w for w in words[1:] if not w.startswith("-")]
    if args and (program in _RUNNERS or re.fullmatch(r"[a-z][a-z0-9_:-]{1,20}", args[0])):
        name.append(_script_name(PurePosixPath(args[0]).name))
    return name


def _script_name(name: str) -> str:
    for suffix in _SCRIPT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _toml(drafts: Sequence[Draft], skipped: Sequence[str], source: str) -> str:
    parts = [comment(f"heartbeatd import crontab: {len(drafts)} monitor(s) from {source}") + "\n"]
    if skipped:
        parts.append("".join(comment(line) + "\n" for line in skipped))
    parts += [monitor_toml(draft) for draft in drafts]
    return "\n".join(parts)
