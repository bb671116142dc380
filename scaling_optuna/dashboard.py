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

import hashlib
import logging
import sys
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer
from wsgiref.simple_server import make_server

from scaling_optuna.errors import UserError
from scaling_optuna.experiment import Experiment
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import describe_error

if TYPE_CHECKING:
    from scaling_optuna.compare import Comparison
    from scaling_optuna.report import Report

__all__ = [
    "GRAPH_OBJECT_IDS", "NOTE_BEGIN", "NOTE_END", "comparison_ids", "planned_comparison", "planned_publication",
    "publish_comparison", "publish_report", "serve",
]

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

        from scaling_optuna import build_report

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


def publish_comparison(experiments: list[Experiment], comparison: Comparison) -> list[dict[str, Any]]:
    """Save the comparison's figure and a note onto each compared experiment's largest study.

    The figure's id and the note's section are the comparison's own
    (:func:`comparison_ids`: one per set of experiments), so that comparing A
    with B and A with C keeps both on A, and the report's plots and note stay.
    Returns what was done for each experiment, as :func:`publish_report` does.

    Example::

        from scaling_optuna import compare_experiments

        infos = publish_comparison([exp_cnn, exp_mlp], compare_experiments([exp_cnn, exp_mlp]))
        [info["study"] for info in infos]
    """
    from optuna_dashboard import get_note
    from optuna_dashboard import save_note
    from optuna_dashboard import save_plotly_graph_object

    graph_id, begin, end = comparison_ids(comparison.names)
    figure = comparison.figure()
    # as the report's plots: optuna-dashboard's cards are small; hovering names each trace
    figure.update_layout(showlegend=False, height=440, margin=dict(l=60, r=10, t=70, b=50))
    note = comparison.to_markdown()
    infos = []
    for experiment in experiments:
        study = experiment.studies[experiment.sizes[-1]]
        info: dict[str, Any] = {"study": study.study_name, "storage": mask_url(experiment.storage_url), "graph_object_ids": [], "published": False}
        try:
            save_plotly_graph_object(study, figure, graph_object_id=graph_id)
            info["graph_object_ids"].append(graph_id)
            save_note(study, merge_note(get_note(study), note, begin=begin, end=end))
            info["published"] = True
        except Exception as e:  # SQLAlchemy, gRPC and journal stores each raise their own types
            info["error"] = describe_error(e)
            _log.warning("could not publish the comparison to optuna-dashboard on %s: %s", study.study_name, info["error"])
        infos.append(info)
    return infos


def planned_comparison(experiments: list[Experiment], comparison: Comparison) -> list[dict[str, Any]]:
    """What :func:`publish_comparison` returns when it succeeds (for files written before it runs)."""
    graph_id = comparison_ids(comparison.names)[0]
    return [
        {"study": e.studies[e.sizes[-1]].study_name, "storage": mask_url(e.storage_url), "graph_object_ids": [graph_id], "published": True}
        for e in experiments
    ]


def comparison_ids(names: list[str]) -> tuple[str, str, str]:
    """The graph object id and the note's begin and end markers of a comparison of ``names``.

    Example::

        >>> comparison_ids(["digits", "digits-mlp"])[1]
        '[//]: # "scaling-optuna compare digits vs digits-mlp: begin"'
    """
    key = " vs ".join(names)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"scaling-compare-{digest}", f'[//]: # "scaling-optuna compare {key}: begin"', f'[//]: # "scaling-optuna compare {key}: end"'


def merge_note(existing: str, section: str, *, begin: str = NOTE_BEGIN, end: str = NOTE_END) -> str:
    """``existing`` with the section between ``begin`` and ``end`` replaced (or appended), the user's text kept."""
    block = f"{begin}\n\n{section.strip()}\n\n{end}"
    start, stop = existing.find(begin), existing.find(end)
    if start != -1 and stop > start:
        return existing[:start] + block + existing[stop + len(end):]
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
