"""`heartbeatd import`: monitors written from the schedules a machine already has.

Pure text in, text out: nothing here reads a clock, and nothing writes a
file; the CLI reads the user's files and prints what these modules return.

    render.py   what both importers share: a monitor draft and its TOML,
                TOML strings and comments that survive hostile input, and
                readable, unique slugs
    crontab.py  crontabs (user and system format) -> monitors and the same
                crontab with each job wrapped in `heartbeatd exec`
    units.py    systemd unit files: sections, keys, drop-ins, time spans
    timers.py   *.timer units -> monitors, and a drop-in per service that
                reports its start, success and failure
"""
