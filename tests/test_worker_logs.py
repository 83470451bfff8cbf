"""A worker's warnings reach the driver's stderr as the driver's own do, and a warning
the driver and its workers would each say is said once."""

from __future__ import annotations

import logging
import multiprocessing as mp

import pytest

from cnnlab.cli.app import configure_logging
from cnnlab.study.run import local_pool


@pytest.fixture
def cnnlab_logger():
    root = logging.getLogger("cnnlab")
    handlers, propagate = list(root.handlers), root.propagate
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.propagate = propagate


def test_a_workers_warning_goes_to_the_driver_and_its_info_does_not(cnnlab_logger) -> None:
    sent: list[tuple] = []
    local_pool._log_to_driver(sent.append)
    logging.getLogger("cnnlab.data.somewhere").warning("svhn not found in %s", "/data")
    logging.getLogger("cnnlab.data.somewhere").info("rendered 40 digits")
    assert sent == [
        ("log", "", logging.WARNING, "cnnlab.data.somewhere", "svhn not found in /data")
    ]


def test_the_driver_says_a_forwarded_warning_under_its_logger(cnnlab_logger, capsys) -> None:
    configure_logging(0, None)
    ours, theirs = mp.Pipe(duplex=True)
    worker = local_pool.LocalWorker(process=None, conn=ours, index=0)
    for _ in range(2):  # two workers' worth of the same line
        theirs.send(("log", "", logging.WARNING, "cnnlab.data.somewhere", "svhn not found"))
    theirs.send(("add_epoch", "run-1", None))
    events: list = []
    assert local_pool.LocalPool(1)._read(worker, events) is False
    assert events == [("add_epoch", "run-1", None)]  # the log lines are not run events
    logging.getLogger("cnnlab.data.digits_wild").warning("svhn not found")  # the driver's own
    logging.getLogger("cnnlab.x").warning("another warning")
    assert capsys.readouterr().err.splitlines() == [
        "cnnlab: WARNING: svhn not found",
        "cnnlab: WARNING: another warning",
    ]
