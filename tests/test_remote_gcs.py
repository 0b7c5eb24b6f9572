"""gs:// through loaders.files against a real Google Cloud Storage emulator on 127.0.0.1 (PyPI's
gcp-storage-emulator, tests/servers.py) with gcsfs: TFRecord globs, the index beside a file and
byte-range reads, compressed CSV over spawned DataLoader workers, the TF1 readers, the atomic
writer and the converter, and a missing object or bucket named by its URL."""
from __future__ import annotations

import gzip
import logging
import os
import uuid

os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # before gcsfs is imported: the emulator has no gRPC

import fsspec  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import loaders  # noqa: E402
from loaders import files  # noqa: E402
from loaders.tfrecord import (  # noqa: E402
    FixedLenFeature, IndexedTFRecordDataset, TFRecordDataset, TFRecordWriter, index_path,
)

from servers import start_gcs  # noqa: E402

FEATURES = {"file": FixedLenFeature([], torch.int64), "n": FixedLenFeature([], torch.int64)}
CSV = "a,b,label\n" + "".join(f"{i},{i * 0.5},{i % 3}\n" for i in range(300))


@pytest.fixture(scope="module")
def gcs():
    """(storage_options, gcsfs filesystem, bucket URL) of the emulator's bucket."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    server, options = start_gcs()
    yield options, fsspec.filesystem("gs", **options), "gs://data"
    server.stop()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(files, "RETRY_BACKOFF_S", 0.001)


def folder_in(bucket: str) -> str:
    return f"{bucket}/{uuid.uuid4().hex[:8]}"


def write_tfrecords(folder: str, options: dict, files_: int = 2, per_file: int = 20, index: bool = False) -> list[str]:
    urls = []
    for f in range(files_):
        urls.append(f"{folder}/part-{f}.tfrecord")
        with TFRecordWriter(urls[-1], index=index, storage_options=options) as writer:
            for n in range(per_file + f):
                writer.write({"file": f, "n": n})
    return urls


def pairs(items) -> list[tuple[int, int]]:
    return [(int(item["file"]), int(item["n"])) for item in items]


def expected(files_: int = 2, per_file: int = 20) -> list[tuple[int, int]]:
    return [(f, n) for f in range(files_) for n in range(per_file + f)]


def test_tfrecord_dataset_reads_a_gs_glob_written_by_the_atomic_writer(gcs):
    options, fs, bucket = gcs
    folder = folder_in(bucket)
    write_tfrecords(folder, options)
    fs.invalidate_cache()
    assert fs.find(folder[5:]) == [f"{folder}/part-{f}.tfrecord"[5:] for f in range(2)]  # no temporary objects left
    dataset = TFRecordDataset(f"{folder}/*.tfrecord", FEATURES, storage_options=options, cycle_length=1)
    assert dataset.files == [f"{folder}/part-{f}.tfrecord" for f in range(2)]
    assert pairs(dataset) == expected()


def test_indexed_gs_dataset_finds_or_makes_the_index_beside_the_file_and_reads_byte_ranges(gcs):
    options, fs, bucket = gcs
    with_index, without = write_tfrecords(folder_in(bucket), options, index=True)
    fs.rm(index_path(without)[5:])
    dataset = IndexedTFRecordDataset([with_index, without], FEATURES, storage_options=options)
    fs.invalidate_cache()
    assert fs.exists(index_path(without)[5:])  # written beside the remote file
    assert len(dataset) == 41
    assert pairs(dataset[i] for i in (40, 0, 19, 20)) == [(1, 20), (0, 0), (0, 19), (1, 0)]


def test_one_indexed_gs_file_split_over_two_workers_is_read_exactly_once(gcs):
    options, _, bucket = gcs
    (url,) = write_tfrecords(folder_in(bucket), options, files_=1, per_file=400, index=True)
    loader = DataLoader(TFRecordDataset(url, FEATURES, storage_options=options), batch_size=None, num_workers=2,
                        multiprocessing_context="fork")
    got = pairs(loader)
    assert sorted(got) == expected(1, 400) and len(got) == 400


@pytest.mark.slow
def test_plain_and_gzip_gs_csv_over_two_spawned_workers_is_read_exactly_once(gcs):
    options, fs, bucket = gcs
    folder = folder_in(bucket)
    fs.pipe({f"{folder}/plain.csv"[5:]: CSV.encode(), f"{folder}/packed.csv.gz"[5:]: gzip.compress(CSV.encode())})
    dataset = loaders.CSVDataset(f"{folder}/*.csv*", label_column="label", storage_options=options, chunk_bytes=500)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    assert sorted(int(features[0]) for features, _ in loader) == sorted(list(range(300)) * 2)


def test_tf1_text_line_reader_reads_gs_urls_from_a_filename_queue(gcs):
    options, fs, bucket = gcs
    url = f"{folder_in(bucket)}/lines.txt.gz"
    fs.pipe(url[5:], gzip.compress(b"head\none\ntwo\n"))
    queue = loaders.string_input_producer([url], num_epochs=1, shuffle=False)
    reader = loaders.TextLineReader(skip_header_lines=1, storage_options=options)
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    try:
        assert reader.read(queue) == (f"{url}:2".encode(), b"one")
        assert reader.read(queue) == (f"{url}:3".encode(), b"two")
        with pytest.raises(loaders.errors.OutOfRangeError):
            reader.read(queue)
    finally:
        coord.request_stop()
        coord.join(threads)


def test_writer_exception_leaves_nothing_on_gs(gcs):
    options, fs, bucket = gcs
    folder = folder_in(bucket)
    with pytest.raises(RuntimeError, match="boom"):
        with TFRecordWriter(f"{folder}/out.tfrecord", index=True, storage_options=options) as writer:
            writer.write(b"half")
            raise RuntimeError("boom")
    fs.invalidate_cache()
    assert fs.find(folder[5:]) == []


def test_convert_writes_shards_and_labels_to_gs(gcs, tmp_path):
    from PIL import Image

    from loaders.tfrecord.convert import convert

    options, fs, bucket = gcs
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (4, 3), "red" if label == "cat" else "blue").save(tmp_path / label / "a.png")
    out = folder_in(bucket)
    paths = convert(tmp_path, out, shards=2, storage_options=options)
    assert fs.cat(f"{out}/labels.txt"[5:]) == b"cat\ndog\n"
    labels = [int(r["image/class/label"]) for r in TFRecordDataset(paths, storage_options=options, cycle_length=1)]
    assert sorted(labels) == [0, 1]


def test_missing_gs_object_bucket_and_empty_glob_name_the_url(gcs):
    options, _, bucket = gcs
    with pytest.raises(FileNotFoundError, match=r"^gs://data/absent\.tfrecord: no such file or object$"):
        TFRecordDataset(f"{bucket}/absent.tfrecord", storage_options=options)
    with pytest.raises(FileNotFoundError, match=r"^gs://no-such-bucket/x\.tfrecord: no such file or object$"):
        TFRecordDataset("gs://no-such-bucket/x.tfrecord", storage_options=options)
    with pytest.raises(FileNotFoundError, match=r"^gs://data/\*\.nothing: no object matches this pattern$"):
        loaders.CSVDataset(f"{bucket}/*.nothing", storage_options=options)
