import logging
import os
import signal
import sys

# Until a worker installs its own handler there is no trial to hand back: a SIGTERM
# during start-up (imports, loading data) ends the process cleanly, with status 0.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from scaling_optuna.launcher import die_with_launcher  # noqa: E402

# A worker that `run` started stops with it, even when `run` is killed outright.
die_with_launcher()

from scaling_optuna import cli  # noqa: E402

code = cli.main()
if code > 128 or cli.ran_command in cli.ENDS_WITHOUT_TEARDOWN:
    # Stopped by a signal, or a worker that has settled its trials: the store is consistent and
    # the last line written. Python's own teardown of torch's modules takes seconds of CPU, which
    # a scheduler waiting for the process to go should not wait for, and a worker's daemon threads
    # can turn it into an abort (see cli.ENDS_WITHOUT_TEARDOWN); there is nothing left to save.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
