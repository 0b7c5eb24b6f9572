"""Faults injected by a real HTTP server on 127.0.0.1 (tests/servers.py): connections dropped
mid-body and occasional 500s are retried, so every record comes exactly once; a server that
keeps failing, or answers short, gives one error naming the URL, never a silent short read."""
from __future__ import annotations

import pytest
import torch

import loaders
from loaders import files
from loaders.tfrecord import FixedLenFeature, IndexedTFRecordDataset, TFRecordDataset, TFRecordWriter

from servers import Faults, FileServer

FEATURES = {"n": FixedLenFeature([], torch.int64)}
RECORDS = 400


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose every 3rd GET under /flaky/ is cut off mid-body and every 5th answers 500,
    holding one TFRecord file (and its index) and one CSV under /flaky/, /broken/ and /short/."""
    folder = tmp_path_factory.mktemp("served")
    with TFRecordWriter(folder / "n.tfrecord", index=True) as writer:
        for n in range(RECORDS):
            writer.write({"n": n})
    csv = ("n,label\n" + "".join(f"{n},{n % 2}\n" for n in range(RECORDS))).encode()
    http = FileServer(Faults(drop_every=3, error_every=5))
    for where in ("flaky", "broken", "short"):
        http.files[f"/{where}/n.tfrecord"] = (folder / "n.tfrecord").read_bytes()
        http.files[f"/{where}/n.tfrecord.tfindex"] = (folder / "n.tfrecord.tfindex").read_bytes()
        http.files[f"/{where}/n.csv"] = csv
    yield http
    http.stop()


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Many requests per file (so faults land inside it), and quick retries."""
    monkeypatch.setattr(files, "BLOCK_SIZE", 512)
    monkeypatch.setattr(files, "RETRY_BACKOFF_S", 0.001)


def test_dropped_connections_and_500s_are_retried_and_every_record_comes_once(server):
    before = server.faults.dropped, server.faults.errors
    got = [int(item["n"]) for item in TFRecordDataset(server.url("/flaky/n.tfrecord"), FEATURES)]
    assert got == list(range(RECORDS))
    assert server.faults.dropped > before[0] and server.faults.errors > before[1]  # the faults did happen


def test_indexed_access_through_faults_returns_every_record(server):
    dataset = IndexedTFRecordDataset(server.url("/flaky/n.tfrecord"), FEATURES)
    picked = list(range(len(dataset) - 1, -1, -7))
    assert len(dataset) == RECORDS and [int(dataset[i]["n"]) for i in picked] == picked


def test_csv_through_faults_reads_every_row_once(server):
    dataset = loaders.CSVDataset(server.url("/flaky/n.csv"), label_column="label", chunk_bytes=300)
    assert [int(features[0]) for features, _ in dataset] == list(range(RECORDS))


def test_a_server_that_always_drops_the_body_is_an_error_naming_the_url(server):
    url = server.url("/broken/n.tfrecord")
    with pytest.raises(files.StorageUnavailable, match=rf"(?s)^{url}: reading bytes 0-512 failed after 6 attempts: "
                                                         r".*received 256 of 512 bytes"):
        list(TFRecordDataset(url, FEATURES))


def test_a_clean_but_short_answer_is_detected_not_read_as_the_end(server):
    url = server.url("/short/n.csv")
    with pytest.raises(files.StorageUnavailable, match=rf"^{url}: .*got 256 of the 512 bytes at byte offset 0"):
        files.read_bytes(url)
