"""Log setup of the command line: lines a person reads, or JSON lines a log collector parses.

Every part of the package logs through :mod:`logging` and attaches what a
collector needs as ``extra`` fields (a worker's finished-trial line carries
``event``, ``study``, ``size``, ``trial``, ``state``, ``val_loss``,
``test_error``, ``epochs``, ``seconds`` and ``worker``). The text format shows
the message only; the JSON format writes one object per line with ``time``
(UTC, ISO 8601), ``level``, ``logger``, ``message`` and those fields.
Optuna's own warnings and Python's go through the same handler, one line
each, so a JSON log holds no line of another shape.

Example::

    >>> import io, json, logging
    >>> out = io.StringIO()
    >>> configure_logging("info", "json", stream=out)
    >>> logging.getLogger("scaling_optuna.worker").info("size 60 trial 3 complete", extra={"size": 60, "trial": 3})
    >>> record = json.loads(out.getvalue())
    >>> record["message"], record["size"], record["level"]
    ('size 60 trial 3 complete', 60, 'info')
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import sys
import warnings
from typing import IO, Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OURS = "_scaling_optuna_handler"

# Attributes every LogRecord has; whatever else a record holds came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = _plain(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "info", log_format: str = "text", *, stream: IO[str] | None = None) -> None:
    """Send every log record of this process (Optuna's included) to ``stream`` (stderr) in ``log_format``.

    Calling it again replaces the handler it set before; handlers of others stay.
    """
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT, datefmt="%H:%M:%S"))
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))

    import optuna

    # Optuna writes to its own handler in its own format; through the root logger its
    # warnings take this process's format (a JSON log must hold JSON lines only).
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.captureWarnings(True)
    # Python would add the file, the line number and the warning's source line (Optuna's
    # ExperimentalWarning comes with two): one line, as every other line of the log.
    warnings.showwarning = _warning_line


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """A Python warning as one log line: its category and its message, on one line."""
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, " ".join(str(message).split()))


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: NaN and infinities become null, unknown types their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
