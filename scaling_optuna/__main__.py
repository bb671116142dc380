import os
import signal
import sys

# Until a worker installs its own handler there is no trial to hand back: a SIGTERM
# during start-up (imports, loading data) ends the process cleanly, with status 0.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from scaling_optuna.launcher import die_with_launcher  # noqa: E402

# A worker that `run` started stops with it, even when `run` is killed outright.
die_with_launcher()

from scaling_optuna.cli import main  # noqa: E402

code = main()
if code > 128:
    # Stopped by a signal, with the store consistent and the last line written. Python's own
    # teardown of torch's modules takes seconds of CPU, which a scheduler waiting for the
    # process to go should not wait for; there is nothing left to save.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
