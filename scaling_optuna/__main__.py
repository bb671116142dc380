import signal
import sys

# Until a worker installs its own handler there is no trial to hand back: a SIGTERM
# during start-up (imports, loading data) ends the process cleanly, with status 0.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from scaling_optuna.cli import main  # noqa: E402

sys.exit(main())
