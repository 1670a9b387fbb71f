"""Solar Protocol v1's backend runner (backend/runner.py) without the two jobs nutbridge took over.

Installed by `nutbridge migrate`, run by solar-protocol-pages.service with v1's own Python: runner.py's loop,
on its own schedule (every 10 to 60 minutes by the battery's charge, slower without sun), runs getRemoteData,
viz, create_html and create_sunthinking from the v1 tree as before, unchanged; its IP announcer (clientPostIP)
and point-of-entry election (solarProtocol) are done by nutbridge@UPS instead, so they are replaced here by a
line in runner.log. Arguments: v1's backend folder, the UPS name.
"""

import sys

BACKEND, UPS = sys.argv[1], sys.argv[2]
sys.path.insert(0, BACKEND)

import runner  # type: ignore[import-not-found]  # noqa: E402  (v1's runner.py, from BACKEND)

for module, name in ((runner.clientPostIP, "runClientPostIP"), (runner.solarProtocol, "runSP")):
    if not callable(getattr(module, name, None)):
        # a runner.py this was not written for: running it could announce and elect beside nutbridge
        sys.exit(f"{module.__name__}.{name} not found in {BACKEND}: not the runner.py `nutbridge migrate` knows")
    setattr(module, name, lambda name=name: print(f"{name}: done by nutbridge@{UPS}", flush=True))

sys.argv = [BACKEND]  # as `python /home/pi/solar-protocol/backend` starts it: a minute's wait first
runner.runSP()
