"""Option parsing shared by several commands (not a command module: no ``cmd_`` prefix)."""

from __future__ import annotations

import typer

from ..errors import ConfigError

CONF_HELP = "Confidence level as a fraction (e.g. 0.95); a percent such as 95 is read as 0.95, with a note."


def conf_fraction(conf: float) -> float:
    """``--conf`` as a fraction, as study.yaml's ``analysis.conf``: 0.95 stays, 95 becomes 0.95 (with a note).

    Raises
    ------
    ConfigError
        When the value is neither a fraction in (0, 1) nor a percent in (1, 100).
    """
    if 0.0 < conf < 1.0:
        return conf
    if 1.0 < conf < 100.0:
        typer.echo(f"note: --conf {conf:g} read as a percent: confidence level {conf / 100:g}", err=True)
        return conf / 100.0
    raise ConfigError(f"--conf: expected a confidence level as a fraction between 0 and 1 (e.g. 0.95) or a "
                      f"percent between 1 and 100 (e.g. 95); got {conf:g}")
