"""Settings (read from the environment once) and the gunicorn configuration."""

from config.settings import ConfigError, Settings

__all__ = ["ConfigError", "Settings"]
