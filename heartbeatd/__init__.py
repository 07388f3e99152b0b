"""heartbeatd: a self-hosted dead man's switch for cron jobs, backups and scripts."""

__version__ = "0.1.0"
