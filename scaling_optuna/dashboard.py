"""optuna-dashboard on the experiment's store, and the scaling plots published into it.

Every report run publishes its test-error and test-loss plots, and a short
Markdown note, onto the study of the experiment's largest size (the study
people watch the longest), replacing the previous ones, so that users who
monitor the run in optuna-dashboard see the learning curve grow. A note the
user wrote on that study is kept: the report only rewrites its own section.

Example::

    from scaling_optuna.dashboard import publish_report, serve

    info = publish_report(exp, report)     # {"study": "digits-n0001151", ...}
    serve("sqlite:///scaling-optuna.db", port=8080)   # blocks until Ctrl-C
"""

from __future__ import annotations

import logging
import sys
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer
from wsgiref.simple_server import make_server

from scaling_optuna.errors import UserError
from scaling_optuna.experiment import Experiment
from scaling_optuna.storages import describe_error
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage

if TYPE_CHECKING:
    from scaling_optuna.report import Report

__all__ = ["GRAPH_OBJECT_IDS", "NOTE_BEGIN", "NOTE_END", "planned_publication", "publish_report", "serve"]

_log = logging.getLogger(__name__)

# Fixed ids: optuna-dashboard overwrites a graph object saved under the same id.
GRAPH_OBJECT_IDS = {"test_error": "scaling-law-test-error", "test_loss": "scaling-law-test-loss"}
# Link reference definitions: Markdown renders them as nothing (optuna-dashboard shows HTML comments as text).
NOTE_BEGIN = '[//]: # "scaling-optuna report: begin"'
NOTE_END = '[//]: # "scaling-optuna report: end"'


def publish_report(experiment: Experiment, report: Report) -> dict[str, Any]:
    """Save the report's plots and a note onto the largest size's study.

    Returns what was done (``study``, ``graph_object_ids``, ``published``);
    a store that refuses the write (read-only credentials, say) gives
    ``published: False`` and the reason in ``error`` rather than an exception,
    since the report is worth writing all the same.

    Example::

        info = publish_report(exp, build_report(exp))
        print(info["study"], info["graph_object_ids"])
    """
    from optuna_dashboard import get_note
    from optuna_dashboard import save_note
    from optuna_dashboard import save_plotly_graph_object

    study = experiment.studies[experiment.sizes[-1]]
    info = {**planned_publication(experiment), "graph_object_ids": [], "published": False}
    try:
        for metric, graph_id in GRAPH_OBJECT_IDS.items():
            figure = report.figure(metric)
            # optuna-dashboard shows graph objects in small fixed-height cards, where a legend
            # squeezes or clips the plot; hovering names every trace, and report.html has the legend.
            figure.update_layout(showlegend=False, height=440, margin=dict(l=60, r=10, t=70, b=50))
            save_plotly_graph_object(study, figure, graph_object_id=graph_id)
            info["graph_object_ids"].append(graph_id)
        save_note(study, merge_note(get_note(study), report.to_markdown()))
    except Exception as e:  # SQLAlchemy, gRPC and journal stores each raise their own types
        info["error"] = describe_error(e)
        _log.warning("could not publish the report to optuna-dashboard: %s", info["error"])
        return info
    info["published"] = True
    return info


def planned_publication(experiment: Experiment) -> dict[str, Any]:
    """What :func:`publish_report` returns when it succeeds (for files written before it runs)."""
    return {
        "study": experiment.studies[experiment.sizes[-1]].study_name,
        "storage": mask_url(experiment.storage_url),
        "graph_object_ids": list(GRAPH_OBJECT_IDS.values()),
        "published": True,
    }


def merge_note(existing: str, section: str) -> str:
    """``existing`` with the report's section replaced (or appended), the user's text kept."""
    block = f"{NOTE_BEGIN}\n\n{section.strip()}\n\n{NOTE_END}"
    start, end = existing.find(NOTE_BEGIN), existing.find(NOTE_END)
    if start != -1 and end > start:
        return existing[:start] + block + existing[end + len(NOTE_END):]
    if existing.strip():
        return existing.rstrip() + "\n\n" + block
    return block


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)


def serve(storage_url: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run optuna-dashboard on the store at ``storage_url`` until interrupted.

    Binds to 127.0.0.1 by default: the dashboard can edit and delete studies,
    so exposing it on a network is a choice to make explicitly (``host="0.0.0.0"``).

    Raises:
        StorageError: the store cannot be opened.
        UserError: the port is taken or the address cannot be bound.
    """
    from optuna_dashboard import wsgi

    storage = open_storage(storage_url, create=False)
    app = wsgi(storage)
    try:
        server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as e:
        raise UserError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); pass another --port or --host"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    print(f"optuna-dashboard for {mask_url(storage_url)} on http://{shown}:{server.server_port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("dashboard stopped", file=sys.stderr)
    finally:
        server.server_close()
