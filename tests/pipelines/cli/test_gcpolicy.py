"""The CLI's garbage-collection policy: paused while loading, frozen once loaded, restored after."""

from __future__ import annotations

import gc

from cryptorun_pipelines.cli import gcpolicy


def test_paused_then_loaded_freezes_once_and_restores_everything():
    assert gc.isenabled()
    before = gc.get_freeze_count()
    with gcpolicy.paused():
        assert not gc.isenabled()
        keep = [object() for _ in range(10)]  # noqa: F841 - something alive to freeze
        gcpolicy.loaded()
        assert gc.isenabled() and gc.get_freeze_count() > before
        frozen = gc.get_freeze_count()
        gcpolicy.loaded()  # a second run of the same command (e.g. after its upstream run) changes nothing
        assert gc.get_freeze_count() == frozen
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_an_error_while_paused_restores_the_collector():
    try:
        with gcpolicy.paused():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_loaded_outside_a_command_does_nothing_and_a_disabled_collector_stays_off():
    gcpolicy.loaded()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with gcpolicy.paused():
            gcpolicy.loaded()
            assert gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_main_leaves_the_collector_as_it_found_it(capsys):
    from cryptorun_pipelines.cli.main import main

    assert main(["schedule", "list", "--json"]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    try:  # a usage error (no JOB) leaves through argparse's SystemExit
        main(["schedule", "run"])
    except SystemExit:
        pass
    assert gc.isenabled() and gc.get_freeze_count() == 0
