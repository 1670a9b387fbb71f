"""What the doctor's checks look at and what they say: the Context (filled once by `gather`), a Result per
check, and upsc's answer, asked once."""

from __future__ import annotations

import pwd
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from nutbridge.config import Config
from nutbridge.nut.upsc import UpscAnswer, run_upsc
from nutbridge.nut.version import NutVersion

OK, WARN, FAIL = "ok", "warn", "FAIL"


MOUNTINFO = "/proc/self/mountinfo"


TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Result:
    """What one check found: ``level`` is ok, warn or FAIL; ``fix`` says what to do (a command where possible)."""

    name: str
    level: str
    message: str
    fix: str | None = None


@dataclass
class Context:
    """What the checks look at; ``gather`` fills it from the environment and the flags."""

    ups: str
    confpath: Path
    config_file: Path
    config: Config | None
    config_error: str | None
    port_file: Path
    user: pwd.struct_passwd  # who nutbridge runs as: nut (the unit's User=), else whoever runs the doctor
    systemctl: list[str] | None = None  # None: no systemd to ask
    upsc: list[str] = field(default_factory=lambda: ["upsc"])
    upsd: str = "localhost"
    mounts: Path = Path(MOUNTINFO)
    dummy_ups: Path | None = None
    nut_version: NutVersion | None = None  # what `dummy-ups -V` says
    timeout: float = TIMEOUT
    upsc_answer: UpscAnswer | None = None  # asked once, by the first check that needs it
    driver_mode: bool = False  # nutbridge is NUT's driver (driver = nutbridge): no port file, no dummy-ups

    @property
    def nocomms_file(self) -> Path:
        return self.port_file.with_name(self.port_file.name + "-nocomms")

    def present_port_file(self) -> Path | None:
        """The port file under the name it has now, or None."""
        return next((p for p in (self.port_file, self.nocomms_file) if p.is_file()), None)

    def ask_upsc(self) -> UpscAnswer:
        """``upsc UPS@upsd``, once."""
        if self.upsc_answer is None:
            self.upsc_answer = run_upsc([*self.upsc, f"{self.ups}@{self.upsd}"], self.timeout)
        return self.upsc_answer

    def restart_driver(self) -> str:
        """The command that starts the driver again."""
        return f"sudo systemctl restart nut-driver@{self.ups}" if self.systemctl else f"sudo upsdrvctl start {self.ups}"

    def restart_daemon(self) -> str:
        """The command that starts nutbridge again."""
        if self.driver_mode:
            return self.restart_driver()
        return f"sudo systemctl restart nutbridge@{self.ups}" if self.systemctl else f"restart `nutbridge {self.ups}`"

    def systemctl_says(self, *args: str) -> str:
        """What ``systemctl ARGS`` prints (is-active: active, inactive, failed …)."""
        assert self.systemctl is not None
        done = subprocess.run(
            [*self.systemctl, *args], capture_output=True, text=True, timeout=self.timeout, check=False
        )
        return done.stdout.strip() or done.stderr.strip() or f"exit status {done.returncode}"
