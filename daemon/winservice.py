"""The daemon as a Windows service.  pywin32 is an optional extra:

    pip install "mibridge[windows]"
    python -m daemon.winservice --startup auto install      (starts with Windows)
    python -m daemon.winservice start | stop | remove

The service reads C:\\ProgramData\\mibridge\\mibridge.toml (or the file named by
MIBRIDGE_CONFIG in the service's own environment).  Secrets stay out of the
machine-wide environment (no `setx /M`: every process and user could read it):
give each secret as <name>_file, a file whose ACL lets only the service account
read it, or put the variables in the service's own environment, which only
administrators can read:

    reg add HKLM\\SYSTEM\\CurrentControlSet\\Services\\mibridge /v Environment /t REG_MULTI_SZ
        /d "MIBRIDGE_DB_PASSWORD=...\\0MIBRIDGE_MP_APP_SECRET=..."

Set [logging] file (e.g. C:\\ProgramData\\mibridge\\logs\\mibridge.log): a service
has no console for stderr.

Stopping the service does what SIGTERM does on Linux: no new rows are
claimed, rows in progress finish their step (stop_timeout), anything left is
recovered by lease expiry.  Not testable on Linux CI; the logic it runs is
the same Daemon class the tests exercise.
"""
from __future__ import annotations

import os
import sys

try:
    import servicemanager
    import win32event
    import win32service
    import win32serviceutil
except ImportError:  # not Windows, or pywin32 missing
    win32serviceutil = None


DEFAULT_CONFIG = r"C:\ProgramData\mibridge\mibridge.toml"

if win32serviceutil is not None:
    class MibridgeService(win32serviceutil.ServiceFramework):
        _svc_name_ = "mibridge"
        _svc_display_name_ = "mibridge medical-insurance payment bridge"
        _svc_description_ = "Claims HIS outbox rows and runs insurance payment flows (see README)."

        def __init__(self, args):
            super().__init__(args)
            self._stop_event = win32event.CreateEvent(None, 0, 0, None)
            self._daemon = None

        def SvcStop(self):
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            if self._daemon is not None:
                self._daemon.stopping.set()
                self._daemon.wake.set()
            win32event.SetEvent(self._stop_event)

        def SvcDoRun(self):
            from daemon import logs
            from daemon.app import build_daemon
            from daemon.config import load

            cfg = load(os.environ.get("MIBRIDGE_CONFIG") or DEFAULT_CONFIG)
            logs.setup_from(cfg)
            servicemanager.LogInfoMsg("mibridge starting")
            self._daemon = build_daemon(cfg)
            self._daemon.start()
            win32event.WaitForSingleObject(self._stop_event, win32event.INFINITE)
            self._daemon.stop()
            servicemanager.LogInfoMsg("mibridge stopped")


def main() -> int:
    if win32serviceutil is None:
        print('the Windows service needs Windows and pywin32: pip install "mibridge[windows]"', file=sys.stderr)
        return 1
    win32serviceutil.HandleCommandLine(MibridgeService)
    return 0


if __name__ == "__main__":
    sys.exit(main())
