"""Fixtures shared by the provider adapter tests."""

import pytest
import responses


@pytest.fixture
def mocked():
    """Scripted replies at the HTTP boundary; an unexpected or unused request fails the test."""
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def sleeps():
    """The back-off waits a client asked for, recorded instead of slept."""
    return []
