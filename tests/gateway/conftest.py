"""Fixtures of the gateway tests: one controllable upstream on a real port per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.gateway.support import UpstreamControl, free_port, serving, upstream_app


@dataclass
class RunningUpstream:
    control: UpstreamControl
    url: str


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[RunningUpstream]:
    control = UpstreamControl()
    port = free_port()
    with serving(upstream_app(control), port):
        yield RunningUpstream(control=control, url=f"http://127.0.0.1:{port}")


@pytest.fixture
def upstream(upstream_server: RunningUpstream) -> RunningUpstream:
    """The session's upstream with its knobs reset for this test."""
    control = upstream_server.control
    control.failing_status, control.delay_s = None, 0.0
    control.hits.clear()
    return upstream_server
