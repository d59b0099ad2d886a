"""Property-based API test: schemathesis generates requests from the OpenAPI schema; none may get a 5xx.

Bounded (a few dozen examples per operation) so it runs in seconds. Host names
are resolved by a stub that answers 127.0.0.1, which the default URL policy
refuses, so generated URLs never leave the machine.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from specread.service.app import create_app  # noqa: E402
from specread.settings import ReaderConfig, ServiceSettings  # noqa: E402


async def _loopback_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def _make_app():
    return create_app(
        ServiceSettings(
            reader=ReaderConfig(cache_dir=None),
            executor="thread",
            warmup=False,
            resolver=_loopback_resolver,
            max_upload_bytes=1 << 20,
        )
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", _make_app())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:
    # Every default check (no 5xx, documented status codes, content types and response schemas, negative data
    # rejected...) except "schema-valid data is accepted": random bytes are a schema-valid `image` yet no image.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
