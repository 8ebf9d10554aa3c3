"""The suite's shared hub checks its own health: one that went bad fails the test about to get
it, with its logs and the test that had it last, and the next test gets a fresh hub."""

import signal

import pytest

from tests.conftest import SharedHub

pytestmark = pytest.mark.slow


def test_a_broken_shared_hub_fails_one_test_with_its_logs_and_is_replaced():
    shared = SharedHub()
    try:
        first = shared.for_test("test_that_breaks_it")
        assert first.health_problem() is None
        first.hub.send_signal(signal.SIGKILL)  # what a crashed or killed hub looks like
        first.hub.wait(10)
        with pytest.raises(pytest.fail.Exception) as failed:
            shared.for_test("test_after_it")
        message = str(failed.value)
        assert "the shared sandbox hub is unhealthy before this test" in message
        assert "hub process exited with -9" in message
        assert "the last test that used it: test_that_breaks_it" in message
        assert "--- hub log" in message and "--- proxy" in message and "JupyterHub" in message
        assert first.token not in message  # the log tail has the token masked
        fresh = shared.for_test("test_after_that")
        assert fresh is not first and fresh.health_problem() is None
    finally:
        shared.close()


def test_a_hub_whose_proxy_answers_503_is_unhealthy():
    """The proxy lives on after its hub: its 503 is the health check's answer, not a hang."""
    shared = SharedHub()
    try:
        hub = shared.for_test("t")
        hub.hub.send_signal(signal.SIGSTOP)  # a hub that no longer answers (but still exists)
        try:
            problem = hub.health_problem(timeout=2)
        finally:
            hub.hub.send_signal(signal.SIGCONT)
        assert problem is not None and "through the proxy" in problem, problem
    finally:
        shared.close()
