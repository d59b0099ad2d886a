"""Review and correct (issue 14), the HTTP API of ``specread review``: decisions, bad input, guards, restarts."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CliInvoke, FakeEngine
from review_fixtures import ReviewData, build_review_data
from specread.io.check import check_output
from specread.readers import build_reader
from specread.review import REVIEW_COLUMNS, DecisionStore, ReviewSession, read_review_rows
from specread.settings import ReaderConfig, ServiceSettings

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from specread.service.review import create_review_app


@pytest.fixture
def data(tmp_path: Path) -> ReviewData:
    return build_review_data(tmp_path / "data", FakeEngine().fingerprint())


def _client(data: ReviewData, labels: Path, output: Path | None = None, **settings: object) -> TestClient:
    reader = build_reader(ReaderConfig(cache_dir=str(data.cache)), engine=FakeEngine())
    session = ReviewSession(
        read_review_rows(data.input_csv, data.predictions_csv), DecisionStore(labels), data.images, reader
    )
    return TestClient(create_review_app(session, ServiceSettings(**settings), output))


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    return tmp_path / "reviewed.csv"


@pytest.fixture
def client(data: ReviewData, labels: Path) -> Iterator[TestClient]:
    with _client(data, labels) as c:
        yield c


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["index"]: r for r in csv.DictReader(fh)}


def _error(resp, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def test_the_page_and_the_state(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "review.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/review.js").status_code == 200
    assert client.get("/v1/review/state").json() == {"total": 4, "reviewed": 0, "next": "3"}
    assert client.get("/healthz").json() == {"status": "ok", "reviewed": 0, "total": 4}
    row = client.get("/v1/review/rows/1").json()
    assert row["entity"] == "item_weight" and row["prediction"] == "250.0 gram" and row["confidence"] == 0.3
    assert [(c["n"], c["answer"], c["current"]) for c in row["choices"]] == [
        (1, "500.0 gram", False),
        (2, "250.0 gram", True),
    ]
    assert row["image"] == "label_1.png" and row["page"] == {"width": 520, "height": 300}
    assert len(row["tokens"]) == 2 and all(len(t["quad"]) == 4 for t in row["tokens"])


def test_each_decision_type_is_written_to_the_labels_file(client: TestClient, labels: Path) -> None:
    first = client.post("/v1/review/rows/3/decision", json={"decision": "accept"})
    assert first.status_code == 200, first.text
    assert first.json()["next"] == "1" and first.json()["state"]["reviewed"] == 1
    assert _rows(labels)["3"]["entity_value"] == "2.0 litre"  # on disk before the answer
    assert client.post("/v1/review/rows/1/decision", json={"decision": "pick", "candidate": 1}).json()["next"] == "2"
    typed = client.post("/v1/review/rows/2/decision", json={"decision": "typed", "value": "110v"})
    assert typed.json()["decision"]["entity_value"] == "110.0 volt"
    last = client.post("/v1/review/rows/0/decision", json={"decision": "absent"}).json()
    assert last["next"] is None and last["state"] == {"total": 4, "reviewed": 4, "next": None}
    assert {i: (r["entity_value"], r["decision"]) for i, r in _rows(labels).items()} == {
        "3": ("2.0 litre", "accept"),
        "1": ("500.0 gram", "pick"),
        "2": ("110.0 volt", "typed"),
        "0": ("", "absent"),
    }
    assert client.get("/v1/review/rows/1").json()["decision"]["decision"] == "pick"


def test_undo_the_latest_or_one_row(client: TestClient, labels: Path) -> None:
    assert client.post("/v1/review/undo").json()["undone"] is None
    client.post("/v1/review/rows/3/decision", json={"decision": "accept"})
    client.post("/v1/review/rows/1/decision", json={"decision": "absent"})
    undone = client.post("/v1/review/undo").json()
    assert undone["undone"]["index"] == "1" and undone["state"]["next"] == "1"
    assert list(_rows(labels)) == ["3"]
    assert client.delete("/v1/review/rows/3/decision").json()["undone"]["decision"] == "accept"
    assert _rows(labels) == {}
    _error(client.delete("/v1/review/rows/99/decision"), 404, "unknown_row")


def test_bad_input_is_refused_with_json_errors(client: TestClient, labels: Path) -> None:
    _error(client.get("/v1/review/rows/99"), 404, "unknown_row")
    _error(client.post("/v1/review/rows/99/decision", json={"decision": "accept"}), 404, "unknown_row")
    wrong_unit = _error(
        client.post("/v1/review/rows/2/decision", json={"decision": "typed", "value": "5 kg"}), 422, "bad_value"
    )
    assert "kilogram is not a unit of voltage" in wrong_unit and "volt" in wrong_unit
    not_number = _error(
        client.post("/v1/review/rows/2/decision", json={"decision": "typed", "value": "many V"}), 422, "bad_value"
    )
    assert "not a number" in not_number
    _error(client.post("/v1/review/rows/2/decision", json={"decision": "typed"}), 422, "bad_value")
    _error(client.post("/v1/review/rows/2/decision", json={"decision": "pick", "candidate": 5}), 422, "bad_value")
    _error(client.post("/v1/review/rows/2/decision", json={"decision": "pick", "candidate": 0}), 422, "invalid_request")
    _error(client.post("/v1/review/rows/2/decision", json={"decision": "maybe"}), 422, "invalid_request")
    _error(
        client.post("/v1/review/rows/2/decision", content=b"not json", headers={"content-type": "application/json"}),
        422,
        "invalid_request",
    )
    _error(
        client.post("/v1/review/rows/2/decision", json={"decision": "typed", "value": "1" * 500}),
        422,
        "invalid_request",
    )
    assert _rows(labels) == {}  # nothing was written


def test_typed_values_are_checked_while_typing(client: TestClient) -> None:
    assert client.get("/v1/review/check", params={"entity": "width", "text": "12,5cm"}).json() == {
        "ok": True,
        "answer": "12.5 centimetre",
        "message": "",
    }
    wrong = client.get("/v1/review/check", params={"entity": "width", "text": "12 kg"}).json()
    assert not wrong["ok"] and "kilogram is not a unit of width" in wrong["message"]
    assert "add a unit" in client.get("/v1/review/check", params={"entity": "width", "text": "12"}).json()["message"]
    _error(client.get("/v1/review/check", params={"entity": "colour", "text": "1 cm"}), 422, "unknown_entity")


def test_only_images_inside_the_images_folder_are_served(client: TestClient, data: ReviewData, tmp_path: Path) -> None:
    ok = client.get("/v1/review/image", params={"name": "label_0.png"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    assert ok.content == (data.images / "label_0.png").read_bytes()
    secret = tmp_path / "secret.png"
    secret.write_bytes((data.images / "label_0.png").read_bytes())  # an image, but outside --images
    os.symlink(secret, data.images / "link.png")
    for name in ("../secret.png", "../../etc/passwd", str(secret), "/etc/passwd", "link.png", "..\\secret.png", ".."):
        message = _error(client.get("/v1/review/image", params={"name": name}), 403, "path_not_allowed")
        assert "not a file inside" in message
    # the same through a raw, percent-encoded path (no client-side normalisation)
    _error(client.get("/v1/review/image?name=%2E%2E%2Fsecret.png"), 403, "path_not_allowed")
    _error(client.get("/v1/review/image", params={"name": "nope.png"}), 404, "image_not_found")
    (data.images / "notes.txt").write_text("not an image")
    _error(client.get("/v1/review/image", params={"name": "notes.txt"}), 415, "not_an_image")


@pytest.mark.parametrize(
    "name",
    ["a" * 1024, "d/" + "a" * 300 + ".png", "loop1", "loop1/x.png", "self.png", "/".join(["d"] * 500) + "/x.png"],
    ids=["1024-chars", "300-char-part", "link-loop", "through-a-loop", "self-link", "deep-path"],
)
def test_odd_image_names_are_404_never_500(client: TestClient, data: ReviewData, name: str) -> None:
    os.symlink("loop2", data.images / "loop1")
    os.symlink("loop1", data.images / "loop2")
    os.symlink("self.png", data.images / "self.png")
    (data.images / "d").mkdir()
    os.symlink(".", data.images / "d" / "d")  # d/d/d/... resolves, however deep, to a folder without x.png
    _error(client.get("/v1/review/image", params={"name": name}), 404, "image_not_found")


def test_names_with_a_nul_or_dots_are_refused(client: TestClient) -> None:
    for name in ("label_0.png\x00.txt", "x/../label_0.png", "../images/label_0.png"):
        _error(client.get("/v1/review/image", params={"name": name}), 403, "path_not_allowed")
    _error(client.get("/v1/review/image", params={"name": "a" * 1025}), 422, "invalid_request")


def test_images_over_the_size_limit_are_refused(data: ReviewData, labels: Path) -> None:
    with _client(data, labels, max_upload_bytes=100) as small:
        _error(small.get("/v1/review/image", params={"name": "label_0.png"}), 413, "image_too_large")


def test_a_restart_continues_and_a_torn_line_is_dropped(data: ReviewData, labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "corrected.csv"
    with _client(data, labels, output=out) as client:
        client.post("/v1/review/rows/3/decision", json={"decision": "typed", "value": "1.5 l"})
        client.post("/v1/review/rows/1/decision", json={"decision": "accept"})
        assert check_output(out, data.input_csv).ok
    with open(labels, "ab") as fh:
        fh.write(b"2,https://example.invalid/images/label_2.png,7,volt")  # a kill in the middle of an append
    with _client(data, labels, output=out) as client:  # the same command again
        assert client.get("/v1/review/state").json() == {"total": 4, "reviewed": 2, "next": "2"}
        client.post("/v1/review/rows/2/decision", json={"decision": "absent"})
    assert {i: r["entity_value"] for i, r in _rows(labels).items()} == {"3": "1.5 litre", "1": "250.0 gram", "2": ""}
    report = check_output(out, data.input_csv)
    assert report.ok and report.empty == 1
    corrected = {r["index"]: r["prediction"] for r in csv.DictReader(out.open())}
    assert corrected == {"0": "25.0 centimetre", "1": "250.0 gram", "2": "", "3": "1.5 litre"}


# -- the command -----------------------------------------------------------------------------------------------------
def test_the_command_builds_the_review_and_serves_it_on_loopback(
    tmp_path: Path, cli: CliInvoke, fake_rapidocr: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import specread.service.app as service_app

    data = build_review_data(tmp_path / "data", fake_rapidocr.fingerprint(), with_confidence=False)
    served: dict = {}
    monkeypatch.setattr(service_app, "serve", lambda settings, **kw: served.update(kw))
    labels = tmp_path / "reviewed.csv"
    args = [data.predictions_csv, "--input", data.input_csv, "--images", data.images, "--labels", labels]
    result = cli("review", *args, "--cache-dir", data.cache)
    assert result.exit_code == 0, result.output
    assert served["host"] == "127.0.0.1" and served["port"] == 8000
    assert "reviewing 4 rows (0 already reviewed)" in result.output
    with TestClient(served["app"]) as client:
        # no confidence column: the pages were read again and the queue starts at the least supported answer
        assert client.get("/v1/review/state").json() == {"total": 4, "reviewed": 0, "next": "1"}
        client.post("/v1/review/rows/1/decision", json={"decision": "accept"})
    assert labels.read_text().count("\n") == 2 and fake_rapidocr.calls == 0

    result = cli("review", *args, "--cache-dir", data.cache, "--order", "input")  # reopened: continues
    assert result.exit_code == 0, result.output
    assert "(1 already reviewed)" in result.output
    with TestClient(served["app"]) as client:
        assert client.get("/v1/review/state").json()["next"] == "0"


def test_the_command_refuses_bad_arguments_before_serving(
    data: ReviewData, tmp_path: Path, cli: CliInvoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    import specread.service.app as service_app

    monkeypatch.setattr(service_app, "serve", lambda *a, **kw: pytest.fail("served despite a bad argument"))
    base = [data.predictions_csv, "--input", data.input_csv, "--labels", tmp_path / "r.csv", "--cache-dir", data.cache]
    cases = [
        ([*base, "--images", data.images, "--order", "random"], "unknown order 'random'"),
        ([*base, "--images", tmp_path / "nowhere"], "is not a folder"),
        (
            [
                data.predictions_csv,
                "--input",
                data.predictions_csv,
                "--images",
                data.images,
                "--labels",
                tmp_path / "r.csv",
            ],
            "missing required column",
        ),
    ]
    foreign = tmp_path / "foreign.csv"
    foreign.write_text(",".join(REVIEW_COLUMNS) + "\n1,x,7,width,1.0 inch,typed,,t\n")  # index 1 of another input
    cases.append(
        (
            [data.predictions_csv, "--input", data.input_csv, "--images", data.images, "--labels", foreign],
            "belongs to another input",
        )
    )
    for args, message in cases:
        result = cli("review", *args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error:") and message in result.output, result.output
