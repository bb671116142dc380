"""Optuna's own storage tests, on every store the project hands out: the proof that they are plain Optuna storages.

Nothing is fetched at run time. The stores (``_stores.py``) are what
``open_storage`` returns for ``sqlite``, ``postgresql``, ``journal`` and ``grpc``
URLs, and ``RetryingStorage`` around Optuna's own ``InMemoryStorage`` and
``RDBStorage`` (bare; and for the heartbeat tests, bare and cached, with Optuna's
heartbeat on). The tests:

- ``test_storage_interface.py``: Optuna's ``StorageTestCase``, from the installed
  ``optuna.testing.pytest_storages``, whole;
- ``test_study.py``, ``test_trial.py``, ``test_frozen.py``, ``test_optimize.py``,
  ``test_heartbeat.py``: every test of Optuna's ``tests/study_tests/test_study.py``,
  ``tests/trial_tests/test_trial.py``, ``tests/trial_tests/test_frozen.py``,
  ``tests/study_tests/test_optimize.py`` and ``tests/storages_tests/test_heartbeat.py``
  that takes a storage mode, adapted (see each module);
- ``test_contract.py``: the quick checks that run without ``slow``: Optuna's errors
  pass through unchanged on every kind of store, Optuna's heartbeat is forwarded.

Without ``-m slow`` only ``StorageTestCase`` on the wrapped in-memory storage and
``test_contract.py`` run; every store runs in the full suite (CI).

Left out, and why:

- Optuna's own storages unwrapped (``inmemory``, ``sqlite``, ``cached_sqlite``,
  ``journal``, ``grpc_rdb``, ``grpc_journal_file``) and ``journal_redis`` (needs
  ``fakeredis``): not the project's stores; Optuna tests them. The wrapper around
  Optuna's cache and its journal runs as the ``sqlite`` and ``journal`` stores.
- ``StorageTestCase``'s three tests that Optuna's ``test_storages.py`` overrides for
  a concrete class (``test_create_new_study_unique_id``: RDBStorage reuses a deleted
  study's id; ``test_get_all_trials_params_order``: the gRPC proxy does not keep the
  parameters' order; ``test_pickle_storage``: a Redis case) are overridden here the
  same way, asking the class of the storage inside the wrapper.
- ``test_copy_study`` and ``test_copy_study_to_study_name`` copy from every store
  to the in-memory one and back, not between every pair (64 pairs each).
- Tests of one concrete class or its private methods: ``storages_tests/rdb_tests``
  (RDBStorage's models, schema upgrades from old files), ``journal_tests`` (the
  journal file's locks and log format), ``test_cached_storage.py`` (``_CachedStorage``'s
  internals, with mocks), ``test_grpc.py`` (Optuna's proxy against its own storages),
  ``test_with_server.py`` (needs a database server named by the environment), the
  two heartbeat tests that patch an ``RDBStorage``'s methods
  (``test_fail_stale_trials_with_race_condition``, ``test_get_stale_trial_ids``;
  ``test_fail_stale_trials`` runs here, with the wrapped storages), ``test_storages.py``'s
  tests of ``get_storage`` and of ``_CachedStorage``'s private ``_get_trials``.
- Tests that take no storage mode (they run on Optuna's in-memory storage only).
"""
