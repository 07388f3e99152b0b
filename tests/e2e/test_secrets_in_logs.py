"""No secret reaches the daemon's log, whatever happens to it.

The real daemon runs with every kind of secret configured: the ping key, API
token (from a file), badge key, a [web.users] login, the SMTP password (from a
file), tokens in webhook, Slack and Discord URLs and in a webhook header, an
ntfy token, a Telegram bot token and a command's argument. Every channel
fails: servers that answer 500 and quote the request path back (as many
frameworks' error pages do), or closed ports. Then the test pings with the key,
makes the alerts fail, calls the API and the status page with wrong
credentials and right ones, reloads an invalid and a valid config, stops the
daemon, and reads all it wrote. `heartbeatd check` on the same config must not
print a secret in its warnings either.
"""

from __future__ import annotations

import base64
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from heartbeatd.auth import hash_password
from tests.harness import (
    DaemonProcess,
    Received,
    WebhookSink,
    free_port,
    http,
    wait_for,
)


def token(kind: str) -> str:
    """A secret that says what it is, so a failure names the leak."""
    return f"{kind}-{secrets.token_hex(8)}"


PING_KEY = token("pingkey")
API_TOKEN = token("apitoken")
BADGE_KEY = token("badgekey")
USER_PASSWORD = token("userpassword")
SMTP_PASSWORD = token("smtppassword")
HOOK_TOKEN = token("hooktoken")
HOOK_HEADER = token("hookheader")
SLACK_TOKEN = token("slacktoken")
DISCORD_TOKEN = token("discordtoken")
NTFY_TOKEN = token("ntfytoken")
TELEGRAM_TOKEN = "123456789:" + token("telegram")
COMMAND_TOKEN = token("commandtoken")
# What a client tries: not ours, maybe someone else's.
WRONG_TOKEN = token("wrongtoken")
WRONG_PASSWORD = token("wrongpassword")
WRONG_PING_KEY = token("wrongpingkey")
# Invalid values in the config a reload rejects.
BAD_PING_KEY = "bad key " + token("badpingkey")
BAD_HOOK_TOKEN = token("badhooktoken")
BAD_TELEGRAM_TOKEN = "not-a-bot-token-" + token("badtelegram")

SECRETS = [
    PING_KEY,
    API_TOKEN,
    BADGE_KEY,
    USER_PASSWORD,
    SMTP_PASSWORD,
    HOOK_TOKEN,
    HOOK_HEADER,
    SLACK_TOKEN,
    DISCORD_TOKEN,
    NTFY_TOKEN,
    TELEGRAM_TOKEN.split(":")[1],
    COMMAND_TOKEN,
    WRONG_TOKEN,
    WRONG_PASSWORD,
    WRONG_PING_KEY,
    BAD_PING_KEY.split()[-1],
    BAD_HOOK_TOKEN,
    BAD_TELEGRAM_TOKEN,
]
CHANNELS = ["mail", "hook", "slack", "discord", "ntfy", "telegram", "script", "journal"]


def quote_the_path(request: Received) -> tuple[int, str]:
    """Answer 500, quoting the path and query back, as many error pages do."""
    return 500, f"Internal Server Error: {request.path}"


@pytest.fixture
def failing() -> Iterator[WebhookSink]:
    server = WebhookSink(respond=quote_the_path).start()
    yield server
    server.stop()


def write_files(directory: Path) -> None:
    (directory / "api-token").write_text(API_TOKEN + "\n")
    (directory / "smtp-password").write_text(SMTP_PASSWORD + "\n")
    script = directory / "notify.sh"
    script.write_text("#!/bin/sh\necho 'could not notify' >&2\nexit 1\n")
    script.chmod(0o755)


def config_text(
    daemon: DaemonProcess,
    failing: WebhookSink,
    closed: int,
    *,
    listen: str | None = None,
    ping_key: str = PING_KEY,
    hook_url: str | None = None,
    telegram_token: str = TELEGRAM_TOKEN,
) -> str:
    refused = f"http://127.0.0.1:{closed}"
    hook_url = hook_url or f"{failing.url}/hook/{HOOK_TOKEN}?token={HOOK_TOKEN}"
    return f"""
[server]
listen = "{listen or f"127.0.0.1:{daemon.port}"}"
ping_key = "{ping_key}"
api_token_file = "api-token"
badge_key = "{BADGE_KEY}"

[storage]
path = "{daemon.db_path.name}"

[web.users]
admin = "{hash_password(USER_PASSWORD)}"

[smtp]
host = "127.0.0.1"
port = {closed}
username = "alerts"
password_file = "smtp-password"
from = "heartbeatd <alerts@example.com>"

[channels.mail]
type = "email"
to = ["ops@example.com"]

[channels.hook]
type = "webhook"
url = "{hook_url}"
headers = {{ Authorization = "Bearer {HOOK_HEADER}" }}

[channels.slack]
type = "slack"
url = "{refused}/services/{SLACK_TOKEN}"

[channels.discord]
type = "discord"
url = "{refused}/api/webhooks/1/{DISCORD_TOKEN}"

[channels.ntfy]
type = "ntfy"
server = "{failing.url}"
topic = "ops"
token = "{NTFY_TOKEN}"

[channels.telegram]
type = "telegram"
bot_token = "{telegram_token}"
chat_id = 1
api_url = "{failing.url}"

[channels.script]
type = "command"
command = ["{daemon.dir / "notify.sh"}", "--token", "{COMMAND_TOKEN}"]

[channels.journal]
type = "log"

[monitors.backup]
period = "1h"
grace = "1h"
channels = {json.dumps(CHANNELS)}
"""


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartbeatd", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def start_verbose(daemon: DaemonProcess) -> None:
    """As DaemonProcess.start, with -v: debug lines must not leak either."""
    daemon.starts += 1
    with daemon.log_path.open("ab") as log:
        daemon.proc = subprocess.Popen(
            [sys.executable, "-m", "heartbeatd", "run", "-v", "-c", str(daemon.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=daemon.dir,
        )
    daemon.wait_ready()


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_check_warns_without_showing_a_secret(daemon: DaemonProcess, failing: WebhookSink) -> None:
    write_files(daemon.dir)
    closed = free_port()
    public = daemon.dir / "public.toml"
    # Beyond loopback, with an 0.0.0.0 base URL: more warnings to look at.
    public.write_text(config_text(daemon, failing, closed, listen=f"0.0.0.0:{daemon.port}"))
    public.chmod(0o644)
    daemon.write_raw_config(config_text(daemon, failing, closed))
    daemon.config_path.chmod(0o644)

    for path in (daemon.config_path, public):
        result = check(path)
        assert result.returncode == 0, result.stderr
        # The world-readable file with inline secrets is warned about, by key path.
        assert "holds secrets inline (server.ping_key, server.badge_key" in result.stderr
        assert leaks(result.stderr) == []
        # The ping URLs on stdout carry the ping key, as they must; nothing else.
        assert PING_KEY in result.stdout
        assert leaks(result.stdout.replace(PING_KEY, "")) == []
    assert "server.base_url: alert links will point to http://0.0.0.0" in check(public).stderr


def test_no_secret_reaches_the_log(daemon: DaemonProcess, failing: WebhookSink) -> None:
    write_files(daemon.dir)
    closed = free_port()
    valid = config_text(daemon, failing, closed)
    daemon.write_raw_config(valid)
    start_verbose(daemon)
    base = daemon.base_url

    # Wrong credentials everywhere.
    assert http(f"{base}/api/v1/monitors", headers=bearer(WRONG_TOKEN)).status == 401
    assert (
        http(f"{base}/api/v1/monitors/backup/pause", method="POST", headers=bearer(WRONG_TOKEN))
    ).status == 401
    assert http(f"{base}/", headers=basic("admin", WRONG_PASSWORD)).status == 401
    assert http(f"{base}/metrics", headers=basic("x", WRONG_TOKEN)).status == 401
    assert daemon.ping(f"{WRONG_PING_KEY}/backup").status == 404
    assert http(f"{base}/badge/{WRONG_TOKEN}/backup.svg").status == 404

    # Right ones.
    assert daemon.ping(f"{PING_KEY}/backup").status == 200
    assert http(f"{base}/badge/{BADGE_KEY}/backup.svg").status == 200
    assert http(f"{base}/", headers=basic("admin", USER_PASSWORD)).status == 200
    assert http(f"{base}/api/v1/monitors", headers=bearer(API_TOKEN)).status == 200

    # A failure: every channel tries, and every one but the log fails.
    assert daemon.ping(f"{PING_KEY}/backup/fail", data=b"pg_dump: error").status == 200
    for channel in CHANNELS:
        outcome = "alert delivered" if channel == "journal" else "alert delivery failed"
        wait_for(
            lambda channel=channel, outcome=outcome: any(
                outcome in line and f"channel={channel} " in line
                for line in daemon.log().splitlines()
            ),
            message=f"a delivery through {channel}",
        )
    assert failing.count() >= 3, "the hook, ntfy and telegram channels reached the server"

    # The write API, with the token.
    for action in ("pause", "resume"):
        answer = http(
            f"{base}/api/v1/monitors/backup/{action}", method="POST", headers=bearer(API_TOKEN)
        )
        assert answer.status == 200, answer.text

    # A reload the daemon must refuse (bad secrets), then a good one.
    daemon.write_raw_config(
        config_text(
            daemon,
            failing,
            closed,
            ping_key=BAD_PING_KEY,
            hook_url=f"ftp://127.0.0.1/hook/{BAD_HOOK_TOKEN}",
            telegram_token=BAD_TELEGRAM_TOKEN,
        )
    )
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reload rejected, keeping the running config")
    daemon.write_raw_config(valid)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("config reloaded")
    assert daemon.ping(f"{PING_KEY}/backup").status == 200

    assert daemon.stop() == 0
    log = daemon.log()
    # The test saw what it meant to: the refused reload named the bad keys.
    assert "server.ping_key: may use only letters" in log
    assert "channels.telegram.bot_token: expected a token as BotFather gives it" in log
    assert "login failed user='admin'" in log
    assert leaks(log) == []
    errors = [row[0] or "" for row in daemon.query("SELECT last_error FROM outbox")]
    assert any(errors), "no delivery error was stored"
    assert leaks("\n".join(errors)) == []
