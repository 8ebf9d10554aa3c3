"""The room lock that keeps an `alone` test (one that saturates the machine on purpose) from
running beside any other test when the suite runs in two processes."""

import threading

from tests.conftest import room


def enter(folder, alone, log, name, release):
    with room(folder, alone):
        log.append(f"{name} in")
        release.wait(10)
        log.append(f"{name} out")


def test_an_alone_test_waits_for_the_running_ones_and_keeps_new_ones_out(tmp_path):
    log: list[str] = []
    gates = {name: threading.Event() for name in "abc"}
    threads = {}

    def start(name, alone):
        threads[name] = threading.Thread(target=enter, args=(tmp_path, alone, log, name, gates[name]))
        threads[name].start()

    start("a", alone=False)
    while "a in" not in log:
        threads["a"].join(0.01)
    start("b", alone=True)  # waits for a
    threads["b"].join(0.3)
    start("c", alone=False)  # arrives after b: waits for b (the turnstile), though a holds it shared
    threads["c"].join(0.3)
    assert log == ["a in"]
    gates["a"].set()
    threads["a"].join(10)
    while "b in" not in log:
        threads["b"].join(0.01)
    threads["c"].join(0.3)
    assert log == ["a in", "a out", "b in"]
    gates["b"].set()
    gates["c"].set()
    for thread in threads.values():
        thread.join(10)
    assert log == ["a in", "a out", "b in", "b out", "c in", "c out"]
