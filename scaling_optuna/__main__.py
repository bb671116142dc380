import sys

from scaling_optuna.cli import main

sys.exit(main())
