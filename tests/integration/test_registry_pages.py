# ruff: noqa: F811  (pytest fixtures imported from registry_fixtures are parameters here)
"""`RegistryClient.get_pages`: listings against Debian's docker-registry, and `Link: rel="next"`
pagination against a small in-test endpoint, since docker-registry 2.8 pages neither tags nor
referrers: referrers spread over pages, a next link to another host (never followed: our
credentials must not go there), and links that loop."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from socikit.errors import RegistryError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import descriptor_for
from socikit.registry import RegistryClient, RetryPolicy
from tests.integration.registry_fixtures import RegistryServer, registry  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.registry]

FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, deadline=10.0)
SUBJECT = "sha256:" + "cd" * 32


def _entry(n: int) -> dict[str, Any]:
    return {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": f"sha256:{n:064x}", "size": 100 + n,
            "artifactType": mt.ARTIFACT_TYPE_SOCI_INDEX_V1 if n % 2 else "application/vnd.example.sbom"}


class PagedEndpoint:
    """Serves `GET /v2/app/referrers/<SUBJECT>` as `pages` index pages chained by `Link`
    headers; `links[i]` overrides the next link of page i. Records each request's path and
    Authorization header."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.links: dict[int, str] = {}
        self.seen: list[tuple[str, str]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                endpoint.seen.append((self.path, self.headers.get("Authorization", "")))
                number = int(self.path.rsplit("page=", 1)[1]) if "page=" in self.path else 0
                body = json.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_INDEX,
                                   "manifests": endpoint.pages[number]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", mt.MEDIA_TYPE_OCI_INDEX)
                self.send_header("Content-Length", str(len(body)))
                link = endpoint.links.get(number)
                if link is None and number + 1 < len(endpoint.pages):
                    link = f"/v2/app/referrers/{SUBJECT}?page={number + 1}"
                if link:
                    self.send_header("Link", f'<{link}>; rel="next"')
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def paged() -> Iterator[PagedEndpoint]:
    endpoint = PagedEndpoint([[_entry(1), _entry(2)], [_entry(3)], [_entry(4), _entry(5)]])
    try:
        yield endpoint
    finally:
        endpoint.stop()


def test_list_tags_from_docker_registry(registry: RegistryServer) -> None:
    """docker-registry 2.8 answers a tag list in one page (it ignores `n` there): all of it."""
    client = RegistryClient(registry.host, plain_http=True, retry=FAST_RETRY)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                           "config": descriptor_for(b"{}", mt.MEDIA_TYPE_OCI_CONFIG).to_json(),
                           "layers": []}).encode()
    client.push_blob("pages/app", descriptor_for(b"{}", mt.MEDIA_TYPE_OCI_CONFIG), b"{}")
    tags = [f"t{i}" for i in range(5)]
    for tag in tags:
        client.put_manifest("pages/app", tag, manifest, mt.MEDIA_TYPE_OCI_MANIFEST)
    pages = list(client.get_pages("pages/app", "tags/list"))
    assert len(pages) == 1 and pages[0].status == 200 and pages[0].media_type == "application/json"
    assert sorted(client.list_tags("pages/app")) == tags


def test_referrers_over_several_pages(paged: PagedEndpoint) -> None:
    client = RegistryClient(paged.host, plain_http=True, retry=FAST_RETRY)
    everything = client.referrers("app", SUBJECT)
    assert [d.digest for d in everything] == [_entry(n)["digest"] for n in range(1, 6)]
    soci = client.referrers("app", SUBJECT, mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    assert [d.digest for d in soci] == [_entry(n)["digest"] for n in (1, 3, 5)]
    assert [path for path, _ in paged.seen[:3]] == [
        f"/v2/app/referrers/{SUBJECT}", f"/v2/app/referrers/{SUBJECT}?page=1",
        f"/v2/app/referrers/{SUBJECT}?page=2"]


def test_a_next_link_to_another_host_is_refused(paged: PagedEndpoint) -> None:
    paged.links[0] = f"http://127.0.0.2:{paged.server.server_address[1]}/v2/app/referrers/{SUBJECT}?page=1"
    client = RegistryClient(paged.host, plain_http=True, retry=FAST_RETRY)
    with pytest.raises(RegistryError) as info:
        client.referrers("app", SUBJECT)
    assert "next page is on another host (127.0.0.2:" in str(info.value)
    assert len(paged.seen) == 1  # the foreign link was never requested


def test_next_links_that_loop_are_an_error(paged: PagedEndpoint) -> None:
    paged.links[1] = f"/v2/app/referrers/{SUBJECT}?page=1"
    client = RegistryClient(paged.host, plain_http=True, retry=FAST_RETRY)
    with pytest.raises(RegistryError) as info:
        client.referrers("app", SUBJECT)
    assert "go round in a loop" in str(info.value)
    assert len(paged.seen) == 2
